//! Range reads from the chunk store against a plain byte-vector model:
//! whole and partial objects, version changes, removed and evicted chunks.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::ops::Range;

use bytes::Bytes;
use proptest::prelude::*;
use strata::chunks::{ByteRange, ChunkError, ChunkStore, RangeError};

const CHUNK: u32 = 64;

/// The content of byte `i` of version `v`: versions differ everywhere.
fn byte(v: u8, i: u64) -> u8 {
    (u64::from(v) * 101 + i * 7 + (i >> 8)) as u8
}

fn content(v: u8, range: Range<u64>) -> Vec<u8> {
    range.map(|i| byte(v, i)).collect()
}

#[derive(Clone, Debug)]
enum Op {
    PutObject(u8, u64),
    PutMeta(u8, u64),
    PutChunk(u64),
    RemoveChunk(u64),
    Read(ByteRange),
}

fn range() -> impl Strategy<Value = ByteRange> {
    prop_oneof![
        (0..5000u64, 0..5000u64).prop_map(|(a, b)| ByteRange::FromTo(a, b)),
        (0..5000u64).prop_map(ByteRange::From),
        (0..5000u64).prop_map(ByteRange::Suffix),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..4u8, 0..4000u64).prop_map(|(v, len)| Op::PutObject(v, len)),
        2 => (0..4u8, 0..4000u64).prop_map(|(v, len)| Op::PutMeta(v, len)),
        6 => (0..70u64).prop_map(Op::PutChunk),
        2 => (0..70u64).prop_map(Op::RemoveChunk),
        8 => range().prop_map(Op::Read),
    ]
}

/// What the model knows: the object's version and length, and which
/// `(version, chunk)` pairs were stored and not removed since (the cache may
/// have evicted some; a version's content never changes, so chunks stored
/// under it stay valid for it).
#[derive(Default)]
struct Model {
    object: Option<(u8, u64)>,
    stored: HashSet<(u8, u64)>,
    /// The object was put whole and nothing was removed since.
    whole: bool,
}

/// With `ample` capacity nothing is evicted, so a whole object must read
/// back complete.
fn check(ops: Vec<Op>, capacity: u64, ample: bool) {
    let store: ChunkStore<&str> = ChunkStore::new(capacity, CHUNK).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::PutObject(v, len) => {
                let data = Bytes::from(content(v, 0..len));
                match store.put_object("obj", &format!("v{v}"), data) {
                    // With little room, admission may drop the metadata while
                    // the chunks go in; the chunks already stored stay valid.
                    Ok(()) | Err(ChunkError::VersionMismatch) => {}
                    Err(other) => panic!("{other:?}"),
                }
                model.object = Some((v, len));
                model
                    .stored
                    .extend((0..len.div_ceil(u64::from(CHUNK))).map(|i| (v, i)));
                model.whole = true;
            }
            Op::PutMeta(v, len) => {
                store.put_meta(&"obj", len, &format!("v{v}")).unwrap();
                model.whole &= model.object == Some((v, len));
                model.object = Some((v, len));
            }
            Op::PutChunk(index) => {
                let Some((v, len)) = model.object else {
                    let result = store.put_chunk(&"obj", "v0", index, Bytes::new());
                    // Metadata may have been evicted too; either way, no store.
                    assert!(result.is_err());
                    continue;
                };
                let start = index * u64::from(CHUNK);
                let end = (start + u64::from(CHUNK)).min(len);
                let data = if start < len {
                    content(v, start..end)
                } else {
                    Vec::new()
                };
                let result = store.put_chunk(&"obj", &format!("v{v}"), index, Bytes::from(data));
                match result {
                    Ok(()) => {
                        model.stored.insert((v, index));
                    }
                    Err(ChunkError::OutOfRange { .. }) => assert!(start >= len),
                    // The metadata was evicted meanwhile.
                    Err(ChunkError::VersionMismatch) => assert!(store.meta(&"obj").is_none()),
                    Err(other) => panic!("{other:?}"),
                }
            }
            Op::RemoveChunk(index) => {
                store.remove_chunk(&"obj", index);
                model.whole = false;
                if let Some((v, _)) = model.object {
                    if store.meta(&"obj").is_some() {
                        model.stored.remove(&(v, index));
                    }
                }
            }
            Op::Read(request) => {
                let read = store.read_range(&"obj", request);
                if store.meta(&"obj").is_none() {
                    assert_eq!(read, Err(RangeError::UnknownObject));
                    continue;
                }
                // Cached metadata is always the latest put.
                let (v, len) = model.object.unwrap();
                let wanted = match request.resolve(len) {
                    Ok(wanted) => wanted,
                    Err(error) => {
                        assert_eq!(read, Err(error));
                        continue;
                    }
                };
                let read = read.unwrap();
                assert_eq!(read.range, wanted);
                assert_eq!(
                    (read.meta.len, &*read.meta.version),
                    (len, format!("v{v}").as_str())
                );
                // Parts and missing ranges tile the request, in order.
                let mut pieces: Vec<(Range<u64>, Option<&Bytes>)> = read
                    .parts
                    .iter()
                    .map(|(at, b)| (*at..*at + b.len() as u64, Some(b)))
                    .chain(read.missing.iter().map(|r| (r.clone(), None)))
                    .collect();
                pieces.sort_by_key(|(r, _)| r.start);
                let mut at = wanted.start;
                for (r, bytes) in pieces {
                    assert_eq!(r.start, at, "gap or overlap in {read:?}");
                    at = r.end;
                    if let Some(bytes) = bytes {
                        // Never bytes of another version or offset, and
                        // only from chunks that were stored.
                        assert_eq!(&bytes[..], &content(v, r.clone())[..]);
                        let chunk = r.start / u64::from(CHUNK);
                        assert!(model.stored.contains(&(v, chunk)), "chunk {chunk} invented");
                    }
                }
                assert_eq!(at, wanted.end);
                if ample && model.whole {
                    assert!(
                        read.is_complete(),
                        "a whole object reads back whole: {read:?}"
                    );
                }
                if read.is_complete() {
                    assert_eq!(read.to_bytes().unwrap(), content(v, wanted));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xC4C4),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Room for everything: what was stored is read back exactly.
    #[test]
    fn ample_capacity(ops in proptest::collection::vec(op(), 1..120)) {
        check(ops, 1 << 20, true);
    }

    /// Room for a fraction of one object: chunks get evicted, and reads
    /// report them missing instead of returning anything wrong.
    #[test]
    fn evicting_capacity(ops in proptest::collection::vec(op(), 1..120)) {
        check(ops, 2048, false);
    }
}

#[test]
fn a_partial_object_reports_its_holes() {
    let store: ChunkStore<u32> = ChunkStore::new(1 << 20, 4).unwrap();
    store.put_meta(&1, 10, "e1").unwrap();
    store
        .put_chunk(&1, "e1", 1, Bytes::from_static(b"4567"))
        .unwrap();
    let read = store.read_range(&1, ByteRange::FromTo(2, 8)).unwrap();
    assert_eq!(read.parts, vec![(4, Bytes::from_static(b"4567"))]);
    assert_eq!(read.missing, vec![2..4, 8..9]);
    assert_eq!(read.to_bytes(), None);
    assert_eq!(
        store.put_chunk(&1, "e1", 2, Bytes::from_static(b"89x")),
        Err(ChunkError::WrongLength {
            index: 2,
            expected: 2,
            actual: 3
        })
    );
    assert_eq!(
        store.put_chunk(&1, "e0", 0, Bytes::from_static(b"0123")),
        Err(ChunkError::VersionMismatch)
    );
    assert_eq!(
        store.read_range(&2, ByteRange::From(0)),
        Err(RangeError::UnknownObject)
    );
    assert_eq!(
        store.read_range(&1, ByteRange::From(10)),
        Err(RangeError::Unsatisfiable { len: 10 })
    );
}

#[test]
fn a_new_version_never_mixes_with_the_old() {
    let store: ChunkStore<u32> = ChunkStore::new(1 << 20, 4).unwrap();
    store
        .put_object(1, "v1", Bytes::from_static(b"aaaabbbbcc"))
        .unwrap();
    store.put_meta(&1, 10, "v2").unwrap();
    store
        .put_chunk(&1, "v2", 0, Bytes::from_static(b"AAAA"))
        .unwrap();
    let read = store.read_range(&1, ByteRange::From(0)).unwrap();
    assert_eq!(read.parts, vec![(0, Bytes::from_static(b"AAAA"))]);
    assert_eq!(
        read.missing,
        vec![4..10],
        "v1's chunks are gone, not served"
    );
}

#[test]
fn reads_share_the_chunk_memory() {
    let store: ChunkStore<u32> = ChunkStore::new(1 << 20, 1024).unwrap();
    let data = Bytes::from(vec![7u8; 4096]);
    store.put_object(1, "v", data.clone()).unwrap();
    let read = store.read_range(&1, ByteRange::FromTo(1030, 1500)).unwrap();
    let (_, part) = &read.parts[0];
    // A slice of the stored buffer, not a copy.
    assert_eq!(part.as_ptr(), data[1030..].as_ptr());
}
