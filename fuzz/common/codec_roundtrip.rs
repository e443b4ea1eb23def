// Shared by the fuzz target and the corpus replay test (`include!`d).

/// Any key, value, expiry and tags encode and decode back unchanged, and a
/// record followed by more bytes still decodes to itself.
pub fn check_codec_roundtrip(data: &[u8]) {
    use strata::codec;
    if data.len() < 10 {
        return;
    }
    let (head, rest) = data.split_at(10);
    let expires = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
    let split = usize::from(head[8]).min(rest.len());
    let (key, rest) = rest.split_at(split);
    let tag_count = usize::from(head[9] % 4);
    let tag_text = String::from_utf8_lossy(rest).into_owned();
    let tags: Vec<&str> = tag_text.split(',').take(tag_count).collect();
    let value = rest;
    let meta = codec::RecordMeta {
        expires_at_ms: (expires % 3 != 0).then_some(expires),
        tags: &tags,
    };
    let mut buf = Vec::new();
    let len = codec::encode(key, value, meta, &mut buf).expect("small fields always encode");
    buf.extend_from_slice(b"trailing bytes");
    let (record, used) = codec::decode(&buf).expect("a fresh record decodes");
    assert_eq!(used, len);
    assert_eq!((record.key, record.value), (key, value));
    assert_eq!(record.expires_at_ms, meta.expires_at_ms);
    assert_eq!(record.tags().collect::<Vec<_>>(), tags);
    // Any single flipped bit is caught.
    let bit = data.iter().map(|&b| usize::from(b)).sum::<usize>() % (len * 8);
    buf[bit / 8] ^= 1 << (bit % 8);
    assert!(codec::decode(&buf[..len]).is_err());
}
