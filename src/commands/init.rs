//! `berth init`: a commented berth.toml from what the directory holds (Compose files and
//! their services and ports, a Procfile, .env files). It never overwrites one.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{COMPOSE_FILE_NAMES, CONFIG_FILE_NAME};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::identity::sanitize;
use crate::output;

/// Where Procfile services get their ports: foreman's 5000, then every 10.
const PROCFILE_BASE_PORT: u16 = 5000;

pub fn run(context: &Context) -> Result<()> {
    let dir = fs_err::canonicalize(&context.cwd)?;
    let path = dir.join(CONFIG_FILE_NAME);
    if path.exists() {
        return Err(Error::usage(
            format!("`{}` already exists", path.display()),
            Some("edit it, or move it away and run `berth init` again".to_string()),
        ));
    }
    let text = generate(&dir)?;
    // create_new: a file that appeared meanwhile is not overwritten either.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|error| {
            Error::failed(format!("cannot create `{}`: {error}", path.display()), None)
        })?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    if context.json {
        output::print_json(&serde_json::json!({ "written": path, "config": text }))?;
    } else {
        print!("{text}");
        output::note(&format!("wrote `{}`; `berth up` starts it", path.display()));
    }
    Ok(())
}

/// The berth.toml text for the project in `dir`.
pub fn generate(dir: &Path) -> Result<String> {
    let name = dir
        .file_name()
        .map(|name| sanitize(&name.to_string_lossy()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "project".to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# berth.toml, written by `berth init`. Reference: berth's README."
    );
    let _ = writeln!(out, "[project]\nname = \"{name}\"\n");
    let _ = writeln!(
        out,
        "[ports]\nstride = 100        # each instance moves every port by this much\n"
    );

    let compose: Vec<&str> = COMPOSE_FILE_NAMES
        .iter()
        .copied()
        .filter(|file| dir.join(file).is_file())
        .collect();
    if let Some(file) = compose.first() {
        let _ = writeln!(
            out,
            "# Compose services come from `{file}` (resolved by the Compose tool); each instance\n\
             # gets its own project name, host ports (bound to 127.0.0.1), container, volume\n\
             # and network names."
        );
        let services = compose_services(&dir.join(file));
        for (service, ports) in &services {
            let published = if ports.is_empty() {
                "no published ports".to_string()
            } else {
                format!("publishes {}", ports.join(", "))
            };
            let _ = writeln!(out, "#   {service}: {published}");
        }
        let _ = writeln!(
            out,
            "[compose]\n# files = [\"{file}\"]  # default: {file} and its override file\n# profiles = []\n# shared = []        # volumes or networks every instance shares\n"
        );
    }

    let procfile = dir.join("Procfile");
    if procfile.is_file() {
        let text = crate::input::read_text(&procfile, crate::input::MAX_TEXT_BYTES)?;
        let _ = writeln!(
            out,
            "# From the Procfile: one process service per line, run by sh as foreman does."
        );
        let mut port = PROCFILE_BASE_PORT;
        for (line_number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, command)) = line.split_once(':') else {
                return Err(Error::usage(
                    format!(
                        "`{}` line {}: not `name: command`",
                        procfile.display(),
                        line_number + 1
                    ),
                    Some("fix the Procfile or write berth.toml by hand".to_string()),
                ));
            };
            let service = sanitize(name.trim());
            let command = command.trim();
            let _ = writeln!(out, "[services.{service}]");
            let _ = writeln!(out, "command = {}", toml_string(command));
            let _ = writeln!(out, "shell = true");
            if command.contains("PORT") {
                let _ = writeln!(
                    out,
                    "port = {port}        # given to the process as $PORT (and {{{{ port.{service} }}}})"
                );
                port += 10;
            }
            let _ = writeln!(out);
        }
    }

    let env_files: Vec<String> = [".env", ".env.example", ".env.development"]
        .iter()
        .filter(|file| dir.join(file).is_file())
        .map(|file| file.to_string())
        .collect();
    for file in env_files {
        let _ = writeln!(
            out,
            "# A per-instance copy of {file}: localhost:PORT rewritten to the instance's ports.\n\
             # [[env_files]]\n# source = \"{file}\"\n# target = \"{file}.berth\"\n# set = {{ }}\n"
        );
    }
    if compose.is_empty() && !procfile.is_file() {
        let _ = writeln!(
            out,
            "# No Compose file or Procfile here: declare process services, for example\n\
             # [services.web]\n# command = \"./run-server --port {{{{ port.web }}}}\"\n# port = 3000"
        );
    }
    Ok(out)
}

/// The services of a Compose file and the ports they publish, read from the file as
/// written (a comment only, so no Compose tool is needed).
fn compose_services(file: &Path) -> Vec<(String, Vec<String>)> {
    let Ok(text) = crate::input::read_text(file, crate::input::MAX_TEXT_BYTES) else {
        return Vec::new();
    };
    let Ok(document) = serde_saphyr::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    document
        .get("services")
        .and_then(serde_json::Value::as_object)
        .map(|services| {
            services
                .iter()
                .map(|(name, service)| {
                    let ports = service
                        .get("ports")
                        .and_then(serde_json::Value::as_array)
                        .map(|ports| {
                            ports
                                .iter()
                                .map(crate::compose::ports::entry_text)
                                .collect()
                        })
                        .unwrap_or_default();
                    (name.clone(), ports)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
