//! Handler method names: `on_` plus the packet type's name in snake case.

/// `CLogin` -> `c_login`, `SEnterRoom` -> `s_enter_room`, `HTTPRequest` -> `http_request`, `C_LOGIN` -> `c_login`.
///
/// A word starts at an uppercase letter that follows a lowercase letter or digit, or that ends a run of capitals
/// (the `R` in `HTTPRequest`). Existing underscores are kept, never doubled.
pub(crate) fn snake_case(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let starts_word = prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_is_lower);
            if starts_word && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn converts_packet_names() {
        for (ident, snake) in [
            ("CLogin", "c_login"),
            ("SEnterRoom", "s_enter_room"),
            ("HTTPRequest", "http_request"),
            ("C_LOGIN", "c_login"),
            ("Ping2Pong", "ping2_pong"),
            ("r#Move", "move"),
            ("ping", "ping"),
        ] {
            assert_eq!(snake_case(ident), snake, "{ident}");
        }
    }
}
