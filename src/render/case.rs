//! Case mapping for the `upper` and `lower` formatters: std's full Unicode
//! case conversion, from envinit's own compact tables (`case_tables.rs`,
//! generated from std by tools/case-tables) instead of std's, which cost
//! about 15 KB of the binary.
//!
//! Promises: every char maps exactly as std's `char::to_uppercase` and
//! `char::to_lowercase` map it (tested over every char), including the
//! ones that become several chars (`ß` becomes `SS`, `İ` becomes `i̇`).
//! Nothing panics; nothing is allocated but the output.
//!
//! One approximation, in [`lower`]'s final sigma: like std's
//! `str::to_lowercase`, a `Σ` becomes `ς` at the end of a word (a cased
//! letter before it, none after it, case-ignorable chars in between
//! skipped), else `σ`. Here "cased" is "has a case mapping", which misses
//! std's cased letters that have none (`ª`, `ĸ`, IPA letters, `ℓ`, the
//! mathematical letters), and "case-ignorable" is the short list
//! [`IGNORABLE`] (apostrophes, `.`, `:`, `·`, the soft hyphen, combining
//! marks, modifier letters and Greek accents), not all of std's. A `Σ`
//! whose neighbour is one of the others is lowered as if that neighbour
//! were a space.
//!
//! # Tables
//!
//! A char that maps to one other char is found in runs: a key `start <<
//! 11 | (stride - 1) << 10 | len` and a `u16` delta, meaning that the `len`
//! chars `start`, `start + stride`, ... (stride 1 or 2) each map to
//! themselves with `delta` added to their low 16 bits (wrapping: every
//! such mapping stays in its plane). Runs are sorted and disjoint. A char that maps
//! to two or three chars is in a sorted list of `(char, [char; 3])` as
//! `u16`s (all in the BMP), padded with 0. A char in neither maps to
//! itself.

use super::case_tables::{
    LOWER_DELTAS, LOWER_MULTI, LOWER_RUNS, UPPER_DELTAS, UPPER_MULTI, UPPER_RUNS,
};

/// One direction's tables.
struct Table {
    runs: &'static [u32],
    deltas: &'static [u16],
    multi: &'static [(u16, [u16; 3])],
}

static UPPER: Table = Table {
    runs: &UPPER_RUNS,
    deltas: &UPPER_DELTAS,
    multi: &UPPER_MULTI,
};

static LOWER: Table = Table {
    runs: &LOWER_RUNS,
    deltas: &LOWER_DELTAS,
    multi: &LOWER_MULTI,
};

/// The case-ignorable chars [`lower`]'s final sigma skips (inclusive
/// ranges, sorted): a subset of std's (Unicode's Case_Ignorable).
static IGNORABLE: [(u16, u16); 42] = [
    (0x0027, 0x0027), // '
    (0x002E, 0x002E), // .
    (0x003A, 0x003A), // :
    (0x005E, 0x005E), // ^
    (0x0060, 0x0060), // `
    (0x00A8, 0x00A8), // ¨
    (0x00AD, 0x00AD), // soft hyphen
    (0x00AF, 0x00AF), // ¯
    (0x00B4, 0x00B4), // ´
    (0x00B7, 0x00B8), // · ¸
    (0x02B0, 0x036F), // modifier letters, combining diacritical marks
    (0x0374, 0x0375), // Greek numeral signs
    (0x037A, 0x037A), // Greek ypogegrammeni
    (0x0384, 0x0385), // Greek tonos, dialytika tonos
    (0x0387, 0x0387), // Greek ano teleia
    (0x0483, 0x0489), // Cyrillic combining marks
    (0x0559, 0x0559), // Armenian modifier
    (0x055F, 0x055F), // Armenian abbreviation mark
    (0x1AB0, 0x1ADD), // combining diacritical marks extended
    (0x1D2C, 0x1D6A), // phonetic modifier letters
    (0x1D78, 0x1D78),
    (0x1D9B, 0x1DFF), // modifier letters, combining marks supplement
    (0x1FBD, 0x1FBD), // Greek spacing accents
    (0x1FBF, 0x1FC1),
    (0x1FCD, 0x1FCF),
    (0x1FDD, 0x1FDF),
    (0x1FED, 0x1FEF),
    (0x1FFD, 0x1FFE),
    (0x200B, 0x200F), // zero-width space, joiners, direction marks
    (0x2018, 0x2019), // ‘ ’
    (0x2024, 0x2024), // one dot leader
    (0x2027, 0x2027), // hyphenation point
    (0x202A, 0x202E), // bidirectional embeddings
    (0x2060, 0x2064), // word joiner, invisible operators
    (0x2066, 0x206F), // bidirectional isolates, deprecated format chars
    (0x20D0, 0x20F0), // combining marks for symbols
    (0xFE00, 0xFE0F), // variation selectors
    (0xFE20, 0xFE2F), // combining half marks
    (0xFEFF, 0xFEFF), // zero-width no-break space
    (0xFF07, 0xFF07), // fullwidth '
    (0xFF0E, 0xFF0E), // fullwidth .
    (0xFF1A, 0xFF1A), // fullwidth :
];

/// `s` in upper case, as std's `str::to_uppercase`.
pub(crate) fn upper(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_uppercase());
        } else {
            push_mapped(&UPPER, c, &mut out);
        }
    }
    out
}

/// `s` in lower case, as std's `str::to_lowercase` (but for the final
/// sigma's approximation: see the module's documentation).
pub(crate) fn lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if c == 'Σ' {
            out.push(if final_sigma(s, i) { 'ς' } else { 'σ' });
        } else {
            push_mapped(&LOWER, c, &mut out);
        }
    }
    out
}

/// Whether the `Σ` at byte `i` of `s` ends a word.
fn final_sigma(s: &str, i: usize) -> bool {
    let before = s.get(..i).unwrap_or_default();
    let after = s.get(i + 'Σ'.len_utf8()..).unwrap_or_default();
    ignorable_then_cased(before.chars().rev()) && !ignorable_then_cased(after.chars())
}

/// Whether the first char that is not case-ignorable is cased.
fn ignorable_then_cased(mut chars: impl Iterator<Item = char>) -> bool {
    chars.find(|&c| !ignorable(c)).is_some_and(cased)
}

/// Whether `c` is in [`IGNORABLE`].
fn ignorable(c: char) -> bool {
    let c = c as u32;
    let i = IGNORABLE.partition_point(|&(first, _)| u32::from(first) <= c);
    i.checked_sub(1)
        .and_then(|i| IGNORABLE.get(i))
        .is_some_and(|&(_, last)| c <= u32::from(last))
}

/// Whether `c` has a case mapping (every such char is cased).
fn cased(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    [&UPPER, &LOWER]
        .into_iter()
        .any(|t| multi(t, c).is_some() || single(t, c) != c)
}

/// Appends what `c` maps to in `t`.
fn push_mapped(t: &Table, c: char, out: &mut String) {
    match multi(t, c) {
        Some(to) => {
            for &u in to.iter().take_while(|&&u| u != 0) {
                out.push(char::from_u32(u32::from(u)).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
        }
        None => out.push(single(t, c)),
    }
}

/// The two or three chars `c` maps to in `t`, if it is in the list.
fn multi(t: &Table, c: char) -> Option<&'static [u16; 3]> {
    let c = u16::try_from(c as u32).ok()?;
    let i = t.multi.binary_search_by_key(&c, |&(from, _)| from).ok()?;
    t.multi.get(i).map(|(_, to)| to)
}

/// What `c` maps to in `t`'s runs (itself if in none).
fn single(t: &Table, c: char) -> char {
    let code = c as u32;
    let i = t.runs.partition_point(|&key| key >> 11 <= code);
    let Some(i) = i.checked_sub(1) else {
        return c;
    };
    let (Some(&key), Some(&delta)) = (t.runs.get(i), t.deltas.get(i)) else {
        return c;
    };
    let offset = code - (key >> 11);
    let stride2 = key >> 10 & 1;
    if offset & stride2 != 0 || offset >> stride2 >= key & 0x3FF {
        return c;
    }
    let low = (code as u16).wrapping_add(delta);
    char::from_u32(code & !0xFFFF | u32::from(low)).unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_char_as_std() {
        let mut s = String::new();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            s.clear();
            s.push(c);
            assert!(upper(&s).chars().eq(c.to_uppercase()), "upper {c:?}");
            if c != 'Σ' {
                assert!(lower(&s).chars().eq(c.to_lowercase()), "lower {c:?}");
            }
        }
    }

    #[test]
    fn tables_are_well_formed() {
        assert_eq!(
            super::super::case_tables::UNICODE_VERSION,
            char::UNICODE_VERSION
        );
        for t in [&UPPER, &LOWER] {
            let mut end = 0;
            assert_eq!(t.runs.len(), t.deltas.len());
            for &key in t.runs {
                let (start, stride, len) = (key >> 11, (key >> 10 & 1) + 1, key & 0x3FF);
                assert!(start >= end && len > 0);
                end = start + (len - 1) * stride + 1;
            }
            assert!(t.multi.windows(2).all(|w| w[0].0 < w[1].0));
        }
        assert!(IGNORABLE.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(IGNORABLE.iter().all(|&(first, last)| first <= last));
    }

    #[test]
    fn final_sigma_cases() {
        for (s, want) in [
            ("ΟΔΟΣ", "οδος"),
            ("ΣΑΣ ΟΔΟΣ.", "σας οδος."),
            ("Σ", "σ"),
            ("ΣΣ", "σς"),
            ("ΑΣ'", "ας'"),
            ("ΑΣ'Α", "ασ'α"),
            ("Α'Σ", "α'ς"),
            ("ΑΣ\u{301}", "ας\u{301}"),
            ("AΣ", "aς"),
            ("1Σ", "1σ"),
            (" Σ ", " σ "),
            ("ΣΑ", "σα"),
            ("ΟΔΟΣ, ΟΔΟΣ", "οδος, οδος"),
            ("ΌΣΟΣ·", "όσος·"),
            ("ΛΌΓΟΣ’", "λόγος’"),
        ] {
            assert_eq!(lower(s), want, "{s:?}");
            assert_eq!(s.to_lowercase(), want, "std {s:?}");
        }
    }

    /// Every char's part in the final sigma, std's against ours: the only
    /// differences are std's cased chars without a mapping and std's
    /// case-ignorable chars outside [`IGNORABLE`], both counted here as
    /// neither.
    #[test]
    fn final_sigma_neighbours_as_std_but_documented() {
        #[derive(Debug, PartialEq, Clone, Copy)]
        enum Part {
            Neither,
            Ignorable,
            Cased,
        }
        // "cΣ" ends in ς when c is cased (and not ignorable); "AcΣ" when
        // c is either.
        let part = |lowered_c_sigma: String, lowered_a_c_sigma: String| {
            if lowered_c_sigma.ends_with('ς') {
                Part::Cased
            } else if lowered_a_c_sigma.ends_with('ς') {
                Part::Ignorable
            } else {
                Part::Neither
            }
        };
        let (mut unmapped_cased, mut other_ignorable) = (0, 0);
        let mut s = String::new();
        let mut t = String::new();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            s.clear();
            s.push(c);
            s.push('Σ');
            t.clear();
            t.push('A');
            t.push_str(&s);
            let theirs = part(s.to_lowercase(), t.to_lowercase());
            let ours = part(lower(&s), lower(&t));
            match (theirs, ours) {
                _ if theirs == ours => {}
                (Part::Cased, Part::Neither) => unmapped_cased += 1,
                (Part::Ignorable, Part::Neither) => other_ignorable += 1,
                _ => panic!("{c:?}: std {theirs:?}, envinit {ours:?}"),
            }
        }
        // With Unicode 17: 1328, and 2252 of std's 2794 case-ignorable chars.
        assert!(unmapped_cased < 1400 && other_ignorable < 2400);
    }

    #[test]
    fn strings() {
        for (s, up, low) in [
            ("", "", ""),
            ("straße", "STRASSE", "straße"),
            ("Hello, World 42!", "HELLO, WORLD 42!", "hello, world 42!"),
            ("ǅemal", "ǄEMAL", "ǆemal"),
            ("İstanbul", "İSTANBUL", "i\u{307}stanbul"),
            ("ﬁle", "FILE", "ﬁle"),
            ("ΐ", "\u{399}\u{308}\u{301}", "ΐ"),
            ("ᾳ", "ΑΙ", "ᾳ"),
            ("𐐨𐐀", "𐐀𐐀", "𐐨𐐨"),
        ] {
            assert_eq!(upper(s), up, "{s:?}");
            assert_eq!(lower(s), low, "{s:?}");
        }
    }

    #[test]
    fn words_as_std() {
        for s in [
            "Ελληνικά ΚΕΙΜΕΝΑ ΣΤΟΝ ΚΟΣΜΟ",
            "ΑΣΦΑΛΕΙΑΣ ΣΥΣΤΗΜΑΤΟΣ: ΟΚ.",
            "Ünïcödé Straße GRÜẞE",
            "Москва ПРИВЕТ мир",
            "Ռուսաստան ՀԱՅԱՍՏԱՆ",
            "ႠႡႢ ⴀⴁⴂ ᲐᲑᲒ ანბანი",
            "Ꭰꭰ ᏸᏰ Cherokee",
            "İıŞşĞğ Türkçe",
            "ŉ ǰ ẖ ẗ ẘ ẙ ẚ ﬀ ﬃ ﬆ և ﬓ",
            "ᾈᾀ ᾼ ῌ ῼ ῳ ῷ",
            "Ⓐⓐ ＡＢＣａｂｃ 𞤀𞤢 𖹀𖹠",
            "café CAFÉ cafe\u{301} CAFE\u{301}",
            "日本語 中文 한국어 العربية",
        ] {
            assert_eq!(upper(s), s.to_uppercase(), "{s:?}");
            assert_eq!(lower(s), s.to_lowercase(), "{s:?}");
        }
    }
}
