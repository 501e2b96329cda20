//! The one integration test binary: a hub, site agents and clients in one process, on free ports,
//! with SQLite in a temp dir; and the real `suanli` binary for the CLI.

mod audit;
mod authz;
mod browser;
mod check;
mod cli;
mod contract;
mod datasets;
mod drain;
mod faults;
mod gates;
mod harness;
mod indicators;
mod isolation;
mod models;
mod money;
mod outputs;
mod partition;
mod portal;
mod portal_live;
mod portal_quality;
mod replay;
mod reports;
mod risk;
mod security;
mod skew;
mod slurm;
mod spine;
