//! `signoff audit verify FILE`: checks the audit chain of an exported
//! request (JSON) or of an events export (JSON lines) with the core's
//! [`signoff_core::audit`], and names the first entry that breaks it.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;
use signoff_core::audit::{ChainBreak, verify_events, verify_request};

/// What a file held, once read.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every chain holds: how many entries or events were checked.
    Holds {
        /// `request` or `events`.
        what: &'static str,
        /// How many were checked.
        count: usize,
    },
    /// A chain breaks.
    Breaks {
        /// `request` or `events`.
        what: &'static str,
        /// Where and why.
        at: ChainBreak,
    },
    /// The file is neither a request nor an events export.
    Unreadable(String),
}

impl Verdict {
    /// The exit code the contract gives: 0 holds, 1 breaks, 2 unreadable.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Holds { .. } => ExitCode::SUCCESS,
            Self::Breaks { .. } => ExitCode::from(1),
            Self::Unreadable(_) => ExitCode::from(2),
        }
    }

    /// A line for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Holds {
                what: "request",
                count,
            } => {
                format!("the request's history holds: {count} entries verified")
            }
            Self::Holds { count, .. } => format!("the events hold: {count} events verified"),
            Self::Breaks {
                what: "request",
                at,
            } => format!("history {at}"),
            Self::Breaks { at, .. } => {
                format!("event {} breaks the chain: {}", at.index, at.reason)
            }
            Self::Unreadable(why) => why.clone(),
        }
    }
}

/// Judges the text of a file: a JSON object with `history` is a request;
/// otherwise every non-empty line must be a JSON event object.
pub fn verify_text(text: &str) -> Verdict {
    if let Ok(value) = serde_json::from_str::<Value>(text)
        && value.get("history").is_some()
    {
        return match verify_request(&value) {
            Ok(count) => Verdict::Holds {
                what: "request",
                count,
            },
            Err(at) => Verdict::Breaks {
                what: "request",
                at,
            },
        };
    }
    let mut events = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(event @ Value::Object(_)) if event.get("hash").is_some() => events.push(event),
            _ => {
                return Verdict::Unreadable(format!(
                    "line {} is neither a request with a history nor an event with a hash",
                    number + 1
                ));
            }
        }
    }
    if events.is_empty() {
        return Verdict::Unreadable("the file holds no request and no event".to_owned());
    }
    match verify_events(&events) {
        Ok(count) => Verdict::Holds {
            what: "events",
            count,
        },
        Err(at) => Verdict::Breaks { what: "events", at },
    }
}

/// Reads and judges `path`.
pub fn verify_file(path: &Path) -> Verdict {
    match std::fs::read_to_string(path) {
        Ok(text) => verify_text(&text),
        Err(error) => Verdict::Unreadable(format!("cannot read {}: {error}", path.display())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use serde_json::json;
    use signoff_core::audit::{link_hash, partition_genesis, request_genesis};

    #[test]
    fn requests_and_event_lines_are_judged_with_the_exit_codes_of_the_contract() {
        let entry = json!({ "at": "2026-01-01T00:00:00.000Z", "actor": "a", "action": "create" });
        let mut sealed = entry.clone();
        sealed["hash"] = json!(link_hash(&request_genesis("r"), &entry));
        let request = json!({ "id": "r", "history": [sealed] });
        let holds = verify_text(&request.to_string());
        assert_eq!(holds.exit_code(), ExitCode::SUCCESS);
        let mut broken = request.clone();
        broken["history"][0]["actor"] = json!("b");
        let breaks = verify_text(&broken.to_string());
        assert!(matches!(
            breaks,
            Verdict::Breaks {
                what: "request",
                ..
            }
        ));
        assert_eq!(breaks.exit_code(), ExitCode::from(1));

        let mut event =
            json!({ "id": "0-1", "type": "request.created", "prevHash": partition_genesis(0) });
        event["hash"] = json!(link_hash(&partition_genesis(0), &event));
        let lines = format!("{event}\n\n");
        assert!(matches!(
            verify_text(&lines),
            Verdict::Holds {
                what: "events",
                count: 1
            }
        ));
        for garbage in ["", "not json", "[1,2]", "{\"id\":\"x\"}"] {
            assert_eq!(
                verify_text(garbage).exit_code(),
                ExitCode::from(2),
                "{garbage}"
            );
        }
    }
}
