//! Names generated from `metadata.generateName`, as Kubernetes makes them
//! (`apiserver/pkg/storage/names/generate.go`): the prefix, cut to leave room, then five
//! random characters.
//!
//! The random source is the caller's, so tests are deterministic and this crate needs no
//! random-number crate. A generated name can still collide with an existing object; the
//! API server then answers 409 `AlreadyExists` as Kubernetes does (clients retry), so no
//! check for uniqueness belongs here.
//!
//! # Worked example
//! ```
//! use sextant_api::names::generate_name;
//!
//! let mut next = 0;
//! let name = generate_name("web-", |n| { next += 1; next % n });
//! assert_eq!(name, "web-cdfgh");
//! ```

/// The characters of a suffix: no vowels (so no words appear) and no look-alikes such as
/// `0`/`o`, `1`/`l`/`i` or `3`/`e`.
pub const SUFFIX_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

/// How many random characters follow the prefix: 27⁵ ≈ 14 million names per prefix.
pub const SUFFIX_LENGTH: usize = 5;

/// The length a generated name is kept within, so it also fits where a DNS label is
/// needed (pod host names, label values naming the object).
pub const MAX_NAME_LENGTH: usize = 63;

/// The longest prefix kept whole; longer ones are cut to this.
pub const MAX_PREFIX_LENGTH: usize = MAX_NAME_LENGTH - SUFFIX_LENGTH;

/// A name from `prefix` and [`SUFFIX_LENGTH`] characters of [`SUFFIX_ALPHABET`].
///
/// `random(n)` must return a uniformly chosen index below `n`; a larger one is reduced
/// modulo `n` rather than trusted. A prefix longer than [`MAX_PREFIX_LENGTH`] bytes is cut
/// to that (at a character boundary, so odd input cannot split a character; such input
/// fails name validation afterwards anyway).
pub fn generate_name(prefix: &str, random: impl FnMut(usize) -> usize) -> String {
    let mut end = prefix.len().min(MAX_PREFIX_LENGTH);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    let mut name = String::with_capacity(end + SUFFIX_LENGTH);
    name.push_str(&prefix[..end]);
    name.push_str(&random_suffix(random));
    name
}

/// [`SUFFIX_LENGTH`] characters of [`SUFFIX_ALPHABET`], chosen by `random` as in
/// [`generate_name`].
pub fn random_suffix(mut random: impl FnMut(usize) -> usize) -> String {
    let alphabet = SUFFIX_ALPHABET.as_bytes();
    (0..SUFFIX_LENGTH)
        .map(|_| char::from(alphabet[random(alphabet.len()) % alphabet.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that returns the given indices in turn.
    fn script(indices: &[usize]) -> impl FnMut(usize) -> usize + '_ {
        let mut next = indices.iter().cycle();
        move |_| next.next().copied().unwrap_or(0)
    }

    #[test]
    fn generates_names() {
        let long = "a".repeat(70);
        let cut = format!("{}bbbbb", "a".repeat(58));
        let multibyte = format!("{}é", "a".repeat(57)); // é spans bytes 57..59
        let multibyte_cut = format!("{}bbbbb", "a".repeat(57));
        let cases: &[(&str, &str, &[usize], &str)] = &[
            ("short prefix", "web-", &[0, 1, 2, 3, 4], "web-bcdfg"),
            ("empty prefix", "", &[26, 25, 24, 23, 22], "98765"),
            ("indices wrap", "x-", &[27, 28, 0, 0, 0], "x-bcbbb"),
            ("58 characters kept", &"a".repeat(58), &[0], &cut),
            ("long prefix cut", &long, &[0], &cut),
            (
                "cut at a character boundary",
                &multibyte,
                &[0],
                &multibyte_cut,
            ),
        ];
        for (name, prefix, indices, want) in cases {
            let generated = generate_name(prefix, script(indices));
            assert_eq!(&generated, want, "case {name}");
            assert!(generated.len() <= MAX_NAME_LENGTH, "case {name}");
        }
    }

    #[test]
    fn suffix_uses_only_the_alphabet() {
        let mut state = 7usize;
        let suffix = random_suffix(|n| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state % (n + 3) // deliberately sometimes out of range
        });
        assert_eq!(suffix.len(), SUFFIX_LENGTH);
        assert!(suffix.chars().all(|c| SUFFIX_ALPHABET.contains(c)));
    }
}
