//! Reading a question from JSON, as the question API and scheduled `question` tasks send it.

use serde_json::{Map, Value};

use super::runner::MAX_CONTEXT;
use crate::protocol::questions::Question;

/// Why a JSON object is not a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A key is missing or has the wrong type; the message names it.
    Invalid(String),
    /// The `action` is not one the API implements.
    UnknownAction(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m) | Self::UnknownAction(m) => f.write_str(m),
        }
    }
}

fn bad(message: impl Into<String>) -> ParseError {
    ParseError::Invalid(message.into())
}

/// Turns a JSON object into a question; every error names the key at fault.
pub fn from_json(obj: &Map<String, Value>) -> Result<Question, ParseError> {
    let action = match obj.get("action") {
        None => return Err(bad("missing key \"action\"")),
        Some(Value::String(a)) => a.as_str(),
        Some(_) => return Err(bad("\"action\" must be a string")),
    };
    if let Some(keys) = keys_of(action) {
        if let Some(unknown) = obj.keys().find(|k| !keys.contains(&k.as_str())) {
            // A misspelt key would otherwise be ignored and answer a different question.
            return Err(bad(format!(
                "unknown key {unknown:?} for action {action:?}; its keys are {}",
                keys.join(", ")
            )));
        }
    }
    match action {
        "search" => {
            let term = string(obj, "term")?
                .ok_or_else(|| bad("action \"search\" needs the key \"term\""))?;
            if term.is_empty() {
                return Err(bad("\"term\" must not be empty"));
            }
            Ok(Question::Search {
                term,
                nresults: int(obj, "nresults")?.unwrap_or(0).max(0) as u64,
                n_before: context(obj, "n_before")?,
                n_after: context(obj, "n_after")?,
                dictionary: string(obj, "dictionary")?,
                regex: match obj.get("regex") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(bad("\"regex\" must be true or false")),
                },
            })
        }
        "all" => Ok(Question::All {
            dictionary: string(obj, "dictionary")?,
        }),
        "list" => Ok(Question::List {
            folder: string(obj, "folder")?
                .ok_or_else(|| bad("action \"list\" needs the key \"folder\""))?,
            pattern: string(obj, "pattern")?,
        }),
        other => Err(ParseError::UnknownAction(format!(
            "unknown action {other:?}; the actions are search, all and list"
        ))),
    }
}

/// The keys each action takes (`None` for an action the API does not implement).
fn keys_of(action: &str) -> Option<&'static [&'static str]> {
    match action {
        "search" => Some(&[
            "action",
            "term",
            "nresults",
            "n_before",
            "n_after",
            "dictionary",
            "regex",
        ]),
        "all" => Some(&["action", "dictionary"]),
        "list" => Some(&["action", "folder", "pattern"]),
        _ => None,
    }
}

fn string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("\"{key}\" must be a string"))),
    }
}

fn int(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("\"{key}\" must be an integer"))),
    }
}

fn context(obj: &Map<String, Value>, key: &str) -> Result<u32, ParseError> {
    match int(obj, key)? {
        None => Ok(0),
        Some(n) if (0..=MAX_CONTEXT as i64).contains(&n) => Ok(n as u32),
        Some(_) => Err(bad(format!(
            "\"{key}\" must be an integer from 0 to {MAX_CONTEXT}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Question, ParseError> {
        from_json(
            serde_json::from_str::<Value>(s)
                .unwrap()
                .as_object()
                .unwrap(),
        )
    }

    #[test]
    fn questions_parse_with_defaults() {
        let q = parse(r#"{"action":"search","term":"x","nresults":-3}"#).unwrap();
        assert_eq!(
            q,
            Question::Search {
                term: "x".into(),
                nresults: 0,
                n_before: 0,
                n_after: 0,
                dictionary: None,
                regex: false
            }
        );
        assert_eq!(
            parse(r#"{"action":"all"}"#).unwrap(),
            Question::All { dictionary: None }
        );
    }

    #[test]
    fn each_mistake_names_its_key() {
        for (body, key) in [
            (r#"{"term":"x"}"#, "action"),
            (r#"{"action":5}"#, "action"),
            (r#"{"action":"search"}"#, "term"),
            (r#"{"action":"search","term":"x","n_after":"2"}"#, "n_after"),
            (
                r#"{"action":"search","term":"x","n_before":-1}"#,
                "n_before",
            ),
            (r#"{"action":"list"}"#, "folder"),
            (
                r#"{"action":"search","term":"x","dictonary":"d"}"#,
                "dictonary",
            ),
            (r#"{"action":"list","folder":".","patern":"*"}"#, "patern"),
            (r#"{"action":"all","term":"x"}"#, "term"),
        ] {
            match parse(body) {
                Err(ParseError::Invalid(m)) => assert!(m.contains(key), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(r#"{"action":"dance"}"#),
            Err(ParseError::UnknownAction(_))
        ));
    }
}
