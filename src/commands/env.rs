//! `berth env`: the instance's variables as dotenv, shell (safe to eval) or JSON.

use std::collections::BTreeMap;

use crate::cli::{EnvArgs, EnvFormat};
use crate::context::Context;
use crate::error::Result;
use crate::output;

pub fn run(context: &Context, args: &EnvArgs) -> Result<()> {
    let selected = context.select()?;
    let file = selected.started()?;
    let variables: &BTreeMap<String, String> = &file.env;
    let format = if context.json {
        EnvFormat::Json
    } else {
        args.format
    };
    match format {
        EnvFormat::Json => output::print_json(variables)?,
        EnvFormat::Dotenv => {
            for (key, value) in variables {
                println!("{key}={}", dotenv_value(value));
            }
        }
        EnvFormat::Shell => {
            for (key, value) in variables {
                let quoted = shlex::try_quote(value)
                    .map(|quoted| quoted.into_owned())
                    .unwrap_or_else(|_| "''".to_string());
                println!("export {key}={quoted}");
            }
        }
    }
    Ok(())
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
