//! [`Serde`]: a [`Codec`] for any serde type, encoded with postcard.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use super::{Codec, DecodeError};

/// Wraps a serde type so that it can be a key or value of a spilled or
/// remote cache; encoded with postcard (compact, varint integers).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use strata::codec::{Codec, Serde};
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct User { id: u64, name: String }
///
/// let mut buf = Vec::new();
/// Serde(User { id: 7, name: "ada".into() }).encode(&mut buf);
/// let Serde(user) = Serde::<User>::decode(Bytes::from(buf))?;
/// assert_eq!(user.name, "ada");
/// # Ok::<(), strata::codec::DecodeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serde<T>(pub T);

impl<T: Serialize + DeserializeOwned> Codec for Serde<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        // Serialising fails only for types whose Serialize impl reports an
        // error; nothing is written then, which decode rejects, so such an
        // entry reads back as corrupt (a miss), never as another value.
        if let Ok(encoded) = postcard::to_allocvec(&self.0) {
            out.extend_from_slice(&encoded);
        }
    }

    fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        postcard::from_bytes(&bytes)
            .map(Serde)
            .map_err(|e| DecodeError::Invalid {
                what: std::any::type_name::<T>(),
                reason: e.to_string(),
            })
    }
}
