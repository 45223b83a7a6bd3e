//! The one wire and disk encoding: serde + bincode 2 (standard config).
//!
//! bincode is not self-describing: a changed struct cannot be read by an older peer or file.
//! Wire types change only together with every node; stored records change only with a store
//! schema-version bump.

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    Ok(value)
}

/// Implements `ractor::BytesConvertable` through [`encode`]/[`decode`] for serde types, so they
/// can be fields and replies of `RactorClusterMessage` enums.
///
/// A decode failure panics on purpose: ractor catches a panicking decoder and drops the frame
/// (see `notes/stack-facts.md`), which is the only "reject" a cluster message has.
#[macro_export]
macro_rules! wire_type {
    ($($ty:ty),+ $(,)?) => {$(
        impl ::ractor::BytesConvertable for $ty {
            fn into_bytes(self) -> Vec<u8> {
                $crate::codec::encode(&self).expect(concat!("encode ", stringify!($ty)))
            }
            fn from_bytes(bytes: Vec<u8>) -> Self {
                $crate::codec::decode(&bytes)
                    .unwrap_or_else(|e| panic!("undecodable {}: {e}", stringify!($ty)))
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        id: u64,
        text: String,
        tags: Vec<String>,
        maybe: Option<i64>,
    }

    #[test]
    fn round_trips_and_rejects_truncated_bytes() {
        let s = Sample {
            id: 7,
            text: "héllo".into(),
            tags: vec!["a".into()],
            maybe: Some(-3),
        };
        let bytes = encode(&s).unwrap();
        assert_eq!(decode::<Sample>(&bytes).unwrap(), s);
        assert!(decode::<Sample>(&bytes[..bytes.len() - 2]).is_err());
    }
}
