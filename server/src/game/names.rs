//! What a display name may be: something every other player can read and tell apart from the others.
//!
//! Names are shown to everyone in a room and written to the log, so a name must not carry terminal control bytes,
//! reorder the text around it (bidirectional overrides: U+202E + `gnp.exe` displays as `exe.png`), hide
//! characters, or be blank. The checks are table-driven on purpose: std has no Unicode general categories, and the
//! few ranges that matter for a 32-character name are listed here with what they are.
//!
//! Duplicates are compared on a key ([`name_key`]): lowercase, with the joiners and variation selectors (which a
//! name may carry, for emoji and scripts that need them) left out. That is not full Unicode confusable detection
//! (`Ann` with a Cyrillic `А` is another name); it stops the cheap impersonations.

/// Longest accepted display name, in characters (not bytes).
pub const MAX_NAME_CHARS: usize = 32;

/// Why a name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameError {
    /// Empty, or more than [`MAX_NAME_CHARS`] characters.
    Length,
    /// Contains a character no name may contain.
    Character { ch: char, what: &'static str },
    /// Only spaces and invisible characters, or a space at either end.
    Blank,
}

impl NameError {
    /// Words a client can show. Never repeats the refused characters: they are named as `U+XXXX`.
    pub(crate) fn reason(&self) -> String {
        match *self {
            NameError::Length => format!("a name is 1 to {MAX_NAME_CHARS} characters (not bytes)"),
            NameError::Character { ch, what } => {
                format!("names may not contain U+{:04X} ({what})", u32::from(ch))
            }
            NameError::Blank => "a name needs a visible character and no space at either end".to_owned(),
        }
    }
}

/// Checks `name` against the rules above.
pub(crate) fn check_name(name: &str) -> Result<(), NameError> {
    // At most one character past the limit is counted: a megabyte of name is refused without walking it.
    if !(1..=MAX_NAME_CHARS).contains(&name.chars().take(MAX_NAME_CHARS + 1).count()) {
        return Err(NameError::Length);
    }
    let mut visible = false;
    for ch in name.chars() {
        if let Some(what) = forbidden(ch) {
            return Err(NameError::Character { ch, what });
        }
        visible |= !(ch == ' ' || is_allowed_invisible(ch));
    }
    if !visible || name.starts_with(' ') || name.ends_with(' ') {
        return Err(NameError::Blank);
    }
    Ok(())
}

/// What two names must differ in: case and the allowed invisible characters do not count.
pub(crate) fn name_key(name: &str) -> String {
    name.chars().filter(|&ch| !is_allowed_invisible(ch)).flat_map(char::to_lowercase).collect()
}

/// Why `ch` may not appear in a name, if it may not.
fn forbidden(ch: char) -> Option<&'static str> {
    let c = u32::from(ch);
    if ch.is_control() {
        return Some("a control character");
    }
    if matches!(c, 0x202A..=0x202E | 0x2066..=0x2069) {
        return Some("a bidirectional override or isolate");
    }
    if matches!(c, 0x200E | 0x200F | 0x061C) {
        return Some("a bidirectional mark");
    }
    if matches!(c, 0xFDD0..=0xFDEF) || c & 0xFFFE == 0xFFFE {
        return Some("a noncharacter");
    }
    if ch.is_whitespace() && ch != ' ' {
        return Some("whitespace other than a space");
    }
    // Format characters (general category Cf) that render as nothing, apart from the joiners.
    if matches!(
        c,
        0x00AD
            | 0x0600..=0x0605
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B
            | 0x2060..=0x2064
            | 0x206A..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    ) {
        return Some("an invisible format character");
    }
    // Letters and symbols that exist to look like nothing.
    if matches!(c, 0x115F | 0x1160 | 0x3164 | 0xFFA0 | 0x2800) {
        return Some("a blank-looking character");
    }
    None
}

/// Invisible characters a name may carry between visible ones: zero-width non-joiner and joiner (emoji sequences,
/// Persian, Indic scripts), the combining grapheme joiner, and variation selectors.
fn is_allowed_invisible(ch: char) -> bool {
    matches!(u32::from(ch), 0x200C | 0x200D | 0x034F | 0x180B..=0x180D | 0x180F | 0xFE00..=0xFE0F | 0xE0100..=0xE01EF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn character(name: &str) -> &'static str {
        match check_name(name) {
            Err(NameError::Character { what, .. }) => what,
            other => panic!("{name:?}: expected a refused character, got {other:?}"),
        }
    }

    #[test]
    fn ordinary_names_pass() {
        for name in ["ann", "Ann Lee", "é".repeat(32).as_str(), "李小龍", "👨\u{200D}👩\u{200D}👧", "❤\u{FE0F}", "x"]
        {
            assert_eq!(check_name(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn length_counts_characters() {
        assert_eq!(check_name(""), Err(NameError::Length));
        assert_eq!(check_name(&"x".repeat(33)), Err(NameError::Length));
        assert_eq!(check_name(&"é".repeat(33)), Err(NameError::Length));
        assert_eq!(check_name(&"é".repeat(32)), Ok(()));
        assert_eq!(check_name(&"x".repeat(1_000_000)), Err(NameError::Length));
    }

    #[test]
    fn the_reported_names_are_refused() {
        assert_eq!(character("\x00"), "a control character");
        assert_eq!(character("a\nb\x1b[31mRED"), "a control character");
        assert_eq!(character("x\u{7F}"), "a control character");
        assert_eq!(character("x\u{85}"), "a control character");
        assert_eq!(character("\u{200B}"), "an invisible format character");
        assert_eq!(character("\u{202E}gnp.exe"), "a bidirectional override or isolate");
        assert_eq!(character("a\u{2067}b"), "a bidirectional override or isolate");
        assert_eq!(character("a\u{200F}"), "a bidirectional mark");
        assert_eq!(character("\u{FFFF}"), "a noncharacter");
        assert_eq!(character("a\u{FDD0}"), "a noncharacter");
        assert_eq!(character("a\u{10FFFE}"), "a noncharacter");
        assert_eq!(character("a\u{2028}b"), "whitespace other than a space");
        assert_eq!(character("a\u{A0}b"), "whitespace other than a space");
        assert_eq!(character("\u{3164}"), "a blank-looking character");
        assert_eq!(character("ann\u{E0041}"), "an invisible format character");
        assert_eq!(check_name(&" ".repeat(32)), Err(NameError::Blank));
        assert_eq!(check_name("\u{200D}\u{FE0F}"), Err(NameError::Blank));
        assert_eq!(check_name(" ann"), Err(NameError::Blank));
        assert_eq!(check_name("ann "), Err(NameError::Blank));
    }

    #[test]
    fn reasons_name_the_character_without_repeating_it() {
        let reason = check_name("\u{202E}gnp.exe").unwrap_err().reason();
        assert_eq!(reason, "names may not contain U+202E (a bidirectional override or isolate)");
        assert!(check_name("\x1b").unwrap_err().reason().chars().all(|c| !c.is_control()));
    }

    #[test]
    fn keys_ignore_case_and_joiners() {
        assert_eq!(name_key("Ann"), name_key("aNN"));
        assert_eq!(name_key("ann\u{200D}"), name_key("ann"));
        assert_ne!(name_key("ann"), name_key("anne"));
    }
}
