//! Following the pods' logs: one read per poll of each started pod's log with `timestamps=true`
//! from the last line's second on ([`LogCursor`] drops what was read before), all of it once the
//! container has ended. A gang's lines are prefixed with the pod's index (`1: ...`), as
//! `srun --label` does.

use k8s_openapi::jiff;
use kube::Client;
use kube::api::LogParams;
use suanli_proto::Stream;

use super::failure;
use super::render::CONTAINER;
use crate::logs::{LineChunker, LogSink};

/// Most log bytes read per pod per poll.
const LOG_READ_LIMIT: usize = 4 * 1024 * 1024;
/// Most reads per pod for the last of its output.
const FINAL_LOG_READS: usize = 16;

/// One pod's log as followed by the agent.
#[derive(Debug, Default)]
pub(crate) struct PodLog {
    cursor: LogCursor,
    chunker: LineChunker,
    /// All of it was read (the container has ended).
    pub done: bool,
}

/// Prefixes each line of `text` (`1: `), as `srun --label` does.
fn label_lines(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len() + prefix.len());
    for line in text.split_inclusive('\n') {
        out.push_str(prefix);
        out.push_str(line);
    }
    out
}

/// One read of a pod's log, as bytes (output need not be UTF-8, which `Api::logs` requires);
/// `Err((not_found, message))`.
async fn fetch_log(
    client: &Client,
    ns: &str,
    pod: &str,
    lp: &LogParams,
) -> Result<Vec<u8>, (bool, String)> {
    let req = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/pods"))
        .logs(pod, lp)
        .map_err(|e| (false, e.to_string()))?;
    let res = client
        .send(req.map(kube::client::Body::from))
        .await
        .map_err(|e| (false, failure(&e).message))?;
    let status = res.status();
    let bytes = res
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| (false, e.to_string()))?;
    if status.is_success() {
        Ok(bytes.to_vec())
    } else {
        let text = String::from_utf8_lossy(&bytes);
        Err((status.as_u16() == 404, format!("{status}: {}", text.trim())))
    }
}

/// Reads what is new in a pod's log and emits it; all of it when the container has ended.
pub(crate) async fn read_log(
    client: &Client,
    ns: &str,
    name: &str,
    log: &mut PodLog,
    prefix: Option<&str>,
    terminated: bool,
    sink: &mut LogSink,
) {
    let reads = if terminated { FINAL_LOG_READS } else { 1 };
    for _ in 0..reads {
        let lp = LogParams {
            container: Some(CONTAINER.into()),
            timestamps: true,
            since_time: log.cursor.since(),
            limit_bytes: Some(LOG_READ_LIMIT as i64),
            ..Default::default()
        };
        let body = match fetch_log(client, ns, name, &lp).await {
            Ok(b) => b,
            Err((not_found, message)) => {
                if not_found {
                    // The pod is gone, and its log with it.
                    if terminated {
                        for c in log.chunker.finish() {
                            sink.emit(Stream::Stdout, c);
                        }
                        log.done = true;
                    }
                } else {
                    tracing::debug!(pod = name, error = %message, "reading the pod's log failed");
                }
                return;
            }
        };
        let cut = body.len() >= LOG_READ_LIMIT;
        let text = log
            .cursor
            .take(&String::from_utf8_lossy(&body), terminated && !cut);
        let text = match prefix {
            Some(p) if !text.is_empty() => label_lines(&text, p),
            _ => text,
        };
        for c in log.chunker.push(text.as_bytes()) {
            sink.emit(Stream::Stdout, c);
        }
        for c in log.chunker.tick() {
            sink.emit(Stream::Stdout, c);
        }
        if !cut {
            break;
        }
    }
    if terminated {
        for c in log.chunker.finish() {
            sink.emit(Stream::Stdout, c);
        }
        log.done = true;
    }
}

/// Where the log of one pod was read up to: the timestamp of the last line taken and how many lines
/// with that timestamp were taken (the API's `sinceTime` has whole seconds, so every read repeats
/// some lines).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogCursor {
    last: Option<(jiff::Timestamp, usize)>,
}

impl LogCursor {
    /// Where the next read starts: the last line's second (rounded down).
    pub fn since(&self) -> Option<jiff::Timestamp> {
        let (t, _) = self.last?;
        jiff::Timestamp::from_second(t.as_second()).ok()
    }

    /// Takes a log read with `timestamps=true` and returns the output not seen before, without the
    /// timestamps. A last line without a newline is left for the next read unless `complete` (the
    /// container has ended and the read was not cut at the byte limit). Lines without a timestamp
    /// (not written by the kubelet) are passed through.
    pub fn take(&mut self, body: &str, complete: bool) -> String {
        let prev = self.last.map(|(t, _)| t);
        let mut skip = self.last.map_or(0, |(_, n)| n);
        let mut out = String::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (line, next, whole) = match rest.find('\n') {
                Some(i) => (&rest[..=i], &rest[i + 1..], true),
                None => (rest, "", false),
            };
            if !whole && !complete {
                break;
            }
            rest = next;
            let Some((ts, text)) = split_timestamp(line) else {
                out.push_str(line);
                continue;
            };
            if let Some(p) = prev {
                if ts < p {
                    continue;
                }
                if ts == p && skip > 0 {
                    skip -= 1;
                    continue;
                }
            }
            out.push_str(text);
            self.last = match self.last {
                Some((t, n)) if t == ts => Some((t, n + 1)),
                _ => Some((ts, 1)),
            };
        }
        out
    }
}

/// `2024-05-01T10:00:00.123456789Z text` -> (timestamp, `text`).
pub fn split_timestamp(line: &str) -> Option<(jiff::Timestamp, &str)> {
    let (ts, text) = line.split_once(' ')?;
    let t: jiff::Timestamp = ts.parse().ok()?;
    Some((t, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gang_lines_are_labelled() {
        assert_eq!(label_lines("a\nb\n", "1: "), "1: a\n1: b\n");
        assert_eq!(label_lines("tail", "0: "), "0: tail");
    }

    #[test]
    fn log_cursor_takes_each_line_once() {
        let mut c = LogCursor::default();
        assert_eq!(c.since(), None);
        let first = "2026-11-20T08:00:05.100000000Z hello\n2026-11-20T08:00:05.7Z same\n2026-11-20T08:00:05.7Z same\n2026-11-20T08:00:06.2Z part";
        assert_eq!(c.take(first, false), "hello\nsame\nsame\n");
        assert_eq!(c.since().unwrap().to_string(), "2026-11-20T08:00:05Z");
        // The next read starts at 08:00:05 and repeats what was taken.
        let second = "2026-11-20T08:00:05.100000000Z hello\n2026-11-20T08:00:05.7Z same\n2026-11-20T08:00:05.7Z same\n2026-11-20T08:00:05.7Z same\n2026-11-20T08:00:06.2Z part of a line\n";
        assert_eq!(c.take(second, false), "same\npart of a line\n");
        assert_eq!(c.since().unwrap().to_string(), "2026-11-20T08:00:06Z");
        // At the end, an unfinished last line counts.
        assert_eq!(
            c.take("2026-11-20T08:00:07Z no newline", true),
            "no newline"
        );
        assert_eq!(c.take("plain line\n", false), "plain line\n");
        assert_eq!(
            split_timestamp("2026-11-20T08:00:07.000000001Z  two spaces").map(|(_, t)| t),
            Some(" two spaces")
        );
        assert_eq!(split_timestamp("notatime text"), None);
    }
}
