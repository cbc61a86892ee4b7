//! The instance's variables as dotenv lines or shell `export`s (safe to eval).

use std::collections::BTreeMap;

/// `KEY=value` lines, quoted where needed.
pub fn dotenv(variables: &BTreeMap<String, String>) -> String {
    variables
        .iter()
        .map(|(key, value)| format!("{key}={}\n", dotenv_value(value)))
        .collect()
}

/// `export KEY=value` lines, quoted for a POSIX shell.
pub fn shell(variables: &BTreeMap<String, String>) -> String {
    variables
        .iter()
        .map(|(key, value)| {
            let quoted = shlex::try_quote(value)
                .map(|quoted| quoted.into_owned())
                .unwrap_or_else(|_| "''".to_string());
            format!("export {key}={quoted}\n")
        })
        .collect()
}

/// Plain when safe, else double-quoted with `\`, `"` and `$` escaped.
fn dotenv_value(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@,+=%".contains(c));
    if plain && !value.is_empty() {
        return value.to_string();
    }
    let mut quoted = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    #[test]
    fn dotenv_values_are_quoted_when_needed() {
        assert_eq!(
            super::dotenv_value("http://127.0.0.1:4000"),
            "http://127.0.0.1:4000"
        );
        assert_eq!(super::dotenv_value("/my root"), "\"/my root\"");
        assert_eq!(super::dotenv_value("a$b\"c"), "\"a\\$b\\\"c\"");
    }
}
