//! Helpers for the unit tests only: an installed package, a deterministic
//! stream of arbitrary texts for the parsers' robustness tests, and the check
//! that an enum prints as its serialized name.

use crate::base::dpkg::Package;

/// An installed package of that name.
pub fn package(name: &str) -> Package {
    Package {
        name: name.into(),
        version: "1".into(),
        want: "install".into(),
        state: "installed".into(),
        flag: "ok".into(),
        source: name.into(),
        installed_size_kib: 0,
    }
}

/// `rounds` texts of up to `max_len` bytes (read as lossy UTF-8), drawn by an
/// xorshift generator from `seed`: mostly from `alphabet` (the format's own
/// characters), one byte in five from anywhere.
pub fn arbitrary_texts(alphabet: &[u8], seed: u64, rounds: usize, max_len: usize) -> Vec<String> {
    let mut x = seed.max(1);
    (0..rounds)
        .map(|round| {
            let bytes: Vec<u8> = (0..round % max_len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x % 5 == 0 {
                        (x >> 8) as u8
                    } else {
                        alphabet[(x as usize >> 3) % alphabet.len()]
                    }
                })
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

/// Checks that every variant of `all` prints as its serialized name.
pub fn assert_display_is_serde_name<T: serde::Serialize + std::fmt::Display>(all: &[T]) {
    assert!(!all.is_empty());
    for v in all {
        assert_eq!(
            serde_json::to_value(v).unwrap(),
            serde_json::Value::String(v.to_string())
        );
    }
}
