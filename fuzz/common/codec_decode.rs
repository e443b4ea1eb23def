// Shared by the fuzz target and the corpus replay test (`include!`d).

/// Decoding arbitrary bytes returns a record or an error, never panics; a
/// record that decodes re-encodes to the same bytes.
pub fn check_codec_decode(data: &[u8]) {
    use strata::codec;
    let unverified = codec::decode_unverified(data);
    match codec::decode(data) {
        Ok((record, used)) => {
            assert!(used <= data.len());
            assert_eq!(unverified, Ok((record, used)));
            let mut again = Vec::new();
            let tags: Vec<&str> = record.tags().collect();
            let meta = codec::RecordMeta {
                expires_at_ms: record.expires_at_ms,
                tags: &tags,
            };
            let len = if record.tombstone {
                codec::encode_tombstone(record.key, &mut again)
            } else {
                codec::encode(record.key, record.value, meta, &mut again)
            };
            assert_eq!(len, Ok(used));
            assert_eq!(&again[..], &data[..used]);
        }
        Err(_) => {
            // Without the checksum, a record may still decode; whatever it
            // says stays inside the input.
            if let Ok((record, used)) = unverified {
                assert!(used <= data.len());
                assert!(record.key.len() + record.value.len() <= used);
            }
        }
    }
}
