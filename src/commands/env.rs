//! `berth env`: the instance's variables as dotenv, shell (safe to eval) or JSON.

use std::collections::BTreeMap;

use crate::cli::{EnvArgs, EnvFormat};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::output;
use crate::state::InstanceFile;

pub fn run(context: &Context, args: &EnvArgs) -> Result<()> {
    let selected = context.select()?;
    let variables: BTreeMap<String, String> = match &args.service {
        None => selected.started()?.env.clone(),
        Some(service) => {
            let file = selected.started_with(std::slice::from_ref(service))?;
            service_environment(file, service)?
        }
    };
    let variables = &variables;
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

/// What berth gives a process service on top of what it inherits, and the `PATH` it
/// inherits: the same as [`crate::commands::exec`] runs commands with.
pub fn service_environment(file: &InstanceFile, service: &str) -> Result<BTreeMap<String, String>> {
    let Some(spec) = file.services[service].process() else {
        return Err(Error::usage(
            format!("`{service}` is a compose service; its environment is its container's"),
            Some(format!("`berth exec {service} -- env` prints it")),
        ));
    };
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = &file.path {
        variables.insert("PATH".to_string(), path.clone());
    }
    variables.extend(
        spec.env
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    Ok(variables)
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
