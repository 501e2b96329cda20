//! The statements both stores run, written once: SQL text with numbered placeholders (`$1`,
//! `$2`, ...: PostgreSQL's form, which sqlx's SQLite driver binds by number too) and the values
//! to bind, as a [`Stmt`]; and the write steps made of several statements, run in a store's
//! open transaction through [`Run`]. What only one dialect can say (PostgreSQL's `UNNEST` batch
//! of log chunks, `xmax`, the lease) stays in its store.
use std::borrow::Cow;
use std::future::Future;

use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Database, Encode, Type};
use suanli_types::Timestamp;

use crate::StoreResult;

mod audit;
mod datasets;
mod jobs;
mod models;
mod money;
mod outputs;
mod statistics;
mod tenants;
pub(crate) use audit::*;
pub(crate) use datasets::*;
pub(crate) use jobs::*;
pub(crate) use models::*;
pub(crate) use money::*;
pub(crate) use outputs::*;
pub(crate) use statistics::*;
pub(crate) use tenants::*;

/// A value to bind: the column types both schemas use.
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<Timestamp> for Arg<'_> {
    fn from(v: Timestamp) -> Self {
        Arg::Int(Some(v.0))
    }
}

impl From<Option<Timestamp>> for Arg<'_> {
    fn from(v: Option<Timestamp>) -> Self {
        Arg::Int(v.map(|t| t.0))
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// A statement and the values of its placeholders, in order.
pub(crate) struct Stmt<'a> {
    /// Built only from constant fragments and placeholder numbers; values are bound.
    sql: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

impl<'a> Stmt<'a> {
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Stmt {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub(crate) fn arg(mut self, v: impl Into<Arg<'a>>) -> Self {
        self.args.push(v.into());
        self
    }
}

/// `s` as an sqlx query of database `DB`, its values bound.
pub(crate) fn query<'s, DB: Database>(s: &'s Stmt<'s>) -> Query<'s, DB, DB::Arguments>
where
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
{
    let q = match &s.sql {
        Cow::Borrowed(sql) => sqlx::query(*sql),
        Cow::Owned(sql) => sqlx::query(AssertSqlSafe(sql.clone())),
    };
    s.args.iter().fold(q, |q, a| match a {
        Arg::Int(v) => q.bind(*v),
        Arg::Text(v) => q.bind(v.as_deref()),
        Arg::Bool(v) => q.bind(*v),
    })
}

/// A store's open write transaction, as the shared write steps use it.
pub(crate) trait Run: Send {
    /// Runs `s`; how many rows it changed.
    fn run(&mut self, s: Stmt<'_>) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Runs `s`, an `INSERT .. RETURNING id`; the id.
    fn insert(&mut self, s: Stmt<'_>) -> impl Future<Output = StoreResult<i64>> + Send;
}
