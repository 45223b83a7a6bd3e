//! Reading an `application/x-www-form-urlencoded` body, as the seed 002 services and the job
//! relay take them.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use percent_encoding::percent_decode;

use super::json_body::media_type;
use super::result_family::ResultError;

const FORM: &str = "application/x-www-form-urlencoded";

/// The form's fields; any other declared Content-Type is a 415 (none at all means a form, as
/// curl's `-d` sends).
pub fn fields(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, ResultError> {
    let declared = media_type(headers);
    if !declared.is_empty() && declared != FORM {
        return Err(ResultError::one(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {FORM}, not {declared}"),
        ));
    }
    pairs(body).map_err(|e| ResultError::bad_request(vec![e]))
}

/// Decodes a form strictly: a field given twice, or whose name or value is not UTF-8 once
/// percent-decoded, is an error naming it, never a silent pick or a replacement character.
pub fn pairs(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut fields = HashMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &pair[..0]),
        };
        let name = decode(name).map_err(|_| "a field name is not valid UTF-8".to_string())?;
        let value = decode(value).map_err(|_| format!("{name} is not valid UTF-8"))?;
        if fields.contains_key(&name) {
            return Err(format!("{name} is given more than once"));
        }
        fields.insert(name, value);
    }
    Ok(fields)
}

/// `+` is a space in a form, then `%XX` escapes.
fn decode(raw: &[u8]) -> Result<String, std::str::Utf8Error> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_decode(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::pairs;

    #[test]
    fn decodes_plus_and_escapes() {
        let f = pairs(b"name=Suresh+S%C3%BCbramaniam&price=4500&empty=&flag").unwrap();
        assert_eq!(f["name"], "Suresh Sübramaniam");
        assert_eq!(f["price"], "4500");
        assert_eq!(f["empty"], "");
        assert_eq!(f["flag"], "");
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn refuses_what_it_would_otherwise_guess() {
        assert_eq!(
            pairs(b"name=%FF%FE").unwrap_err(),
            "name is not valid UTF-8"
        );
        assert_eq!(
            pairs(b"user_id=1&user_id=2").unwrap_err(),
            "user_id is given more than once"
        );
        assert!(pairs(b"%FF=1").is_err());
    }
}
