//! A stable-Rust stand-in for the cargo-fuzz target (`fuzz/`): mutates the
//! real settings and gunicorn fixtures at random (fixed seed, so a failure
//! reproduces) and runs the fuzz side's `check_parsers` (`fuzz/src/lib.rs`) on each input, which panics
//! when an invariant breaks. `CONVERT_SMOKE_INPUTS=N` runs N inputs (default 20000).

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod properties;

use properties::check_parsers;

const SEEDS: [&[u8]; 5] = [
    include_bytes!("fixtures/convert/cyclades-node/etc/synnefo/20-snf-cyclades-app-vmapi.conf"),
    include_bytes!("fixtures/convert/cyclades-node/etc/synnefo/10-snf-webproject-database.conf"),
    include_bytes!("fixtures/convert/cyclades-node/etc/gunicorn.d/synnefo"),
    include_bytes!("fixtures/convert/snf-deploy-0.18.1/etc/gunicorn.d/synnefo-archip"),
    b"A = (u'x' r\"\\\\\" b'''t\n''', 0755, 3600L, -1.5e3, {1: [None, True]},)\\\n\r\nif A:\n\tB = 1; C = 2\n",
];

/// Fragments that stress the tokenizer where it branches.
const PIECES: [&[u8]; 24] = [
    b"'", b"\"", b"'''", b"\"\"\"", b"(", b")", b"[", b"]", b"{", b"}", b"\\\n", b"\\", b"#",
    b"\r\n", b"\r", b"\t", b"u'", b"r\"", b"0755L", b"0x", b"=", b";", b"\xe9", b":",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(4) {
            0 => {
                let piece = PIECES[rng.below(PIECES.len())];
                input.splice(at..at, piece.iter().copied());
            }
            1 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            2 if at < input.len() => input[at] = rng.next() as u8,
            _ => {
                let from = rng.below(input.len());
                let end = (from + rng.below(64)).min(input.len());
                let copy = input[from..end].to_vec();
                input.splice(at..at, copy);
            }
        }
    }
}

#[test]
fn random_inputs_never_break_the_parsers() {
    let inputs: usize = std::env::var("CONVERT_SMOKE_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = Rng(0x5eed_0019);
    for _ in 0..inputs {
        let mut input = SEEDS[rng.below(SEEDS.len())].to_vec();
        mutate(&mut rng, &mut input);
        check_parsers(&input);
    }
    for seed in SEEDS {
        check_parsers(seed);
    }
}
