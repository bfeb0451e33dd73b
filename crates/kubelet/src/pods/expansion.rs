//! Kubernetes' `$(VAR)` expansion of env values, command, args and
//! `subPathExpr`: `$(NAME)` is replaced by the variable's value, `$$` is a
//! literal `$`, and references to unknown variables, unterminated `$(` and a
//! `$` followed by anything else are left as they are.

/// Expands `input`; `mapping` returns a variable's value, or `None` to leave
/// the reference as written.
pub(super) fn expand(input: &str, mut mapping: impl FnMut(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match bytes[cursor + 1] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest[1..].find(')') {
                    Some(end) => {
                        let name = &rest[1..end + 1];
                        match mapping(name) {
                            Some(value) => out.push_str(&value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        end + 2
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // The `$` and the next character, copied as they are.
                    let next = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..next]);
                    next
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "VAR" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_rules() {
        let cases = [
            ("$(VAR)", "value"),
            ("a-$(VAR)-b", "a-value-b"),
            ("$(VAR)$(VAR)", "valuevalue"),
            ("$(EMPTY)x", "x"),
            ("$(UNDEFINED)", "$(UNDEFINED)"),
            ("$$(VAR)", "$(VAR)"),
            ("$$$(VAR)", "$value"),
            ("$$$$(VAR)", "$$(VAR)"),
            ("$(VAR", "$(VAR"),
            ("$VAR", "$VAR"),
            ("$", "$"),
            ("x$", "x$"),
            ("$()", "$()"),
            ("héllo $(VAR) ünï", "héllo value ünï"),
            ("$é", "$é"),
            ("no refs", "no refs"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, env), want, "{input:?}");
        }
    }
}
