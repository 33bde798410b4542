//! New DICOM UIDs (`2.25.<128-bit number>`, the UUID-derived root of PS3.5 B.2).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new unique UID: 128 bits from randomly keyed hashes of the time, process and a counter.
pub(crate) fn new_uid() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(count);
        h.write_u32(std::process::id());
        h.write_u64(salt);
        h.finish()
    };
    let value = ((half(1) as u128) << 64) | half(2) as u128;
    format!("2.25.{value}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn uids_are_valid_and_distinct() {
        let (a, b) = (super::new_uid(), super::new_uid());
        assert_ne!(a, b);
        assert!(a.len() <= 64 && a.starts_with("2.25.") && a[5..].bytes().all(|c| c.is_ascii_digit()));
    }
}
