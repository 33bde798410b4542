//! The reader against hand-written pickles and zips: a valid state_dict (with a transposed,
//! offset tensor and a `_metadata` BUILD), and the hostile or broken inputs it must refuse
//! without running anything, overflowing the stack or reading out of bounds.

use super::*;

/// A stored (uncompressed) zip of `files`, laid out as Python's zipfile writes it.
fn zip_of(files: &[(&str, &[u8])], method: u16) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in files {
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&[20, 0, 0, 0]); // version needed, flags
            v.extend_from_slice(&method.to_le_bytes());
            v.extend_from_slice(&[0; 8]); // time, date, crc (not checked)
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&[0, 0]); // extra length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0]); // version made by
        common(&mut central);
        central.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (start, size, count) = (out.len() as u32, central.len() as u32, files.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

fn unicode(s: &str) -> Vec<u8> {
    [&[b'X'][..], &(s.len() as u32).to_le_bytes(), s.as_bytes()].concat()
}

/// `OrderedDict([("w", tensor)])` with `_metadata`, as torch pickles it (protocol 2): the
/// tensor is (2, 3) with stride (1, 2) and offset 1 in a storage of 7 floats.
fn state_dict_pickle() -> Vec<u8> {
    let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(".to_vec();
    p.extend(unicode("w"));
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((");
    p.extend(unicode("storage"));
    p.extend_from_slice(b"ctorch\nFloatStorage\nq\x03");
    p.extend(unicode("0"));
    p.extend(unicode("cpu"));
    p.extend_from_slice(b"K\x07tQK\x01K\x02K\x03\x86K\x01K\x02\x86\x89h\x00)Rq\x04tRq\x05u");
    // BUILD with {"_metadata": OrderedDict({"": {"version": 1}})}
    p.extend_from_slice(b"}");
    p.extend(unicode("_metadata"));
    p.extend_from_slice(b"h\x00)R}");
    p.extend(unicode(""));
    p.extend_from_slice(b"}");
    p.extend(unicode("version"));
    p.extend_from_slice(b"K\x01ssbsb.");
    p
}

fn floats(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn a_state_dict_reads_with_strides_and_offset_applied() {
    let storage = floats(&[9.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let file = zip_of(&[("archive/data.pkl", &state_dict_pickle()), ("archive/data/0", &storage), ("archive/version", b"3\n")], 0);
    assert!(is_zip(&file));
    let tensors = read_state_dict(&file).unwrap();
    assert_eq!(tensors.len(), 1);
    let (name, tensor) = &tensors[0];
    assert_eq!((name.as_str(), tensor.dtype, tensor.shape.as_slice()), ("w", DType::F32, &[2usize, 3][..]));
    // element (i, j) = storage[1 + i + 2 j]
    assert_eq!(tensor.bytes, floats(&[0.0, 2.0, 4.0, 1.0, 3.0, 5.0]));
}

#[test]
fn a_tensor_beyond_its_storage_is_refused() {
    let storage = floats(&[0.0; 6]); // the pickle says 7 elements
    let file = zip_of(&[("archive/data.pkl", &state_dict_pickle()), ("archive/data/0", &storage)], 0);
    assert_eq!(read_state_dict(&file).map(|_| ()).unwrap_err().to_string(), "tensor w: its storage has 24 bytes, fewer than 7 elements of 4");
    let file = zip_of(&[("archive/data.pkl", &state_dict_pickle())], 0);
    assert_eq!(read_state_dict(&file).map(|_| ()).unwrap_err().to_string(), "tensor w: storage 0 is missing from the archive");
}

#[test]
fn compressed_truncated_and_foreign_files_are_refused() {
    let storage = floats(&[0.0; 7]);
    let file = zip_of(&[("archive/data.pkl", &state_dict_pickle()), ("archive/data/0", &storage)], 8);
    assert_eq!(read_state_dict(&file).map(|_| ()).unwrap_err().to_string(), "not a torch.save zip file: archive/data.pkl is compressed (method 8); torch.save stores entries uncompressed");
    let file = zip_of(&[("archive/data.pkl", &state_dict_pickle()), ("archive/data/0", &storage)], 0);
    assert!(read_state_dict(&file[..file.len() - 30]).is_err());
    assert_eq!(read_state_dict(b"\x80\x02}.").map(|_| ()).unwrap_err().to_string(), "not a torch.save zip file: 4 bytes are too few for a zip file");
    let empty = zip_of(&[("weights.bin", b"")], 0);
    assert_eq!(read_state_dict(&empty).map(|_| ()).unwrap_err().to_string(), "not a torch.save zip file: the archive must hold exactly one data.pkl");
}

#[test]
fn globals_other_than_a_state_dicts_are_refused_unrun() {
    for (pickle, global) in [
        (&b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R."[..], "os.system"),
        (b"c__builtin__\neval\n.", "__builtin__.eval"),
        (b"ctorch\nload\n.", "torch.load"),
        (b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93.", "builtins.exec"),
    ] {
        assert_eq!(pickle::state_dict(pickle).unwrap_err(), PtError::Forbidden(global.into()));
    }
    let error = pickle::state_dict(b"\x80\x02]q\x00.").unwrap_err().to_string();
    assert_eq!(error, "not a state_dict pickle: opcode 0x5d at byte 2 is not one a state_dict needs");
    let error = pickle::state_dict(b"\x80\x02ccollections\nOrderedDict\nK\x01\x85R.").unwrap_err().to_string();
    assert_eq!(error, "not a state_dict pickle: OrderedDict cannot be called with 1 arguments");
}

#[test]
fn deep_nesting_and_memo_doubling_stay_cheap() {
    // A million nested 1-tuples: freed without one stack frame per level.
    let mut deep = b"\x80\x02)".to_vec();
    deep.extend(std::iter::repeat_n(0x85, 1_000_000));
    deep.push(b'.');
    assert_eq!(pickle::state_dict(&deep).unwrap_err().to_string(), "not a state_dict pickle: the pickle holds no dict (save model.state_dict())");
    // (x, x) sixty-four times over: 2^64 leaves if copied, 64 tuples shared.
    let mut doubling = b"\x80\x02)q\x00".to_vec();
    for _ in 0..64 {
        doubling.extend_from_slice(b"h\x00h\x00\x86q\x00");
    }
    doubling.push(b'.');
    assert_eq!(pickle::state_dict(&doubling).unwrap_err().to_string(), "not a state_dict pickle: the pickle holds no dict (save model.state_dict())");
    // Truncated input and a stack underflow are errors, not panics.
    assert!(pickle::state_dict(b"\x80\x02X\xff\x00\x00\x00ab").is_err());
    assert!(pickle::state_dict(b"\x80\x02s.").is_err());
    assert!(pickle::state_dict(b"\x80\x02h\x05.").is_err());
}
