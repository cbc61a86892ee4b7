//! `init`: a commented berth.toml from what the directory holds (Compose files and
//! their services and ports, a Procfile, .env files). It never overwrites one.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::{COMPOSE_FILE_NAMES, CONFIG_FILE_NAME};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::identity::sanitize;

/// Where Procfile services get their ports: `web` gets foreman's 5000, every other
/// process the next hundred, in the Procfile's order.
const PROCFILE_BASE_PORT: u16 = 5000;
const PROCFILE_PORT_STEP: u16 = 100;

/// What `init` wrote.
#[derive(Debug, Serialize)]
pub struct Written {
    pub written: std::path::PathBuf,
    pub config: String,
}

/// Writes a berth.toml for the current directory, from `procfile` (found when `None`)
/// and the Compose and .env files there; never over an existing one.
pub fn init(context: &Context, procfile: Option<&Path>) -> Result<Written> {
    let dir = fs_err::canonicalize(&context.cwd)?;
    let path = dir.join(CONFIG_FILE_NAME);
    if path.exists() {
        return Err(Error::usage(
            format!("`{}` already exists", path.display()),
            Some("edit it, or move it away and run `berth init` again".to_string()),
        ));
    }
    let procfile = match procfile {
        Some(file) => {
            let file = dir.join(file);
            if !file.is_file() {
                return Err(Error::usage(
                    format!("no Procfile at `{}`", file.display()),
                    Some("pass the path of an existing Procfile".to_string()),
                ));
            }
            Some(file)
        }
        None => ["Procfile.dev", "Procfile"]
            .iter()
            .map(|name| dir.join(name))
            .find(|file| file.is_file()),
    };
    let text = generate(&dir, procfile.as_deref())?;
    // create_new: a file that appeared meanwhile is not overwritten either.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|error| {
            Error::failed(format!("cannot create `{}`: {error}", path.display()), None)
        })?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(Written {
        written: path,
        config: text,
    })
}

/// One line of a Procfile.
struct ProcfileEntry {
    service: String,
    command: String,
}

fn parse_procfile(path: &Path) -> Result<Vec<ProcfileEntry>> {
    let text = crate::input::read_text(path, crate::input::MAX_TEXT_BYTES)?;
    let mut entries = Vec::new();
    for (line_number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = line.split_once(':') else {
            return Err(Error::usage(
                format!(
                    "`{}` line {}: not `name: command`",
                    path.display(),
                    line_number + 1
                ),
                Some("fix the Procfile or write berth.toml by hand".to_string()),
            ));
        };
        entries.push(ProcfileEntry {
            service: sanitize(name.trim()),
            command: command.trim().to_string(),
        });
    }
    Ok(entries)
}

/// What the Compose file declares, as far as `init` reads it (no Compose tool needed).
struct ComposeSummary {
    file: String,
    /// Service, the ports it publishes (as written), its image.
    services: Vec<(String, Vec<String>, Option<String>)>,
}

impl ComposeSummary {
    /// The service publishing host port `port`, if any.
    fn publishing(&self, port: u16) -> Option<&str> {
        self.services.iter().find_map(|(name, ports, _)| {
            ports
                .iter()
                .any(|entry| published_port(entry) == Some(port))
                .then_some(name.as_str())
        })
    }
}

/// The host port of a Compose port entry as written (`"5432:5432"`, `127.0.0.1:80:80`).
fn published_port(entry: &str) -> Option<u16> {
    let parts: Vec<&str> = entry.split(':').collect();
    match parts.as_slice() {
        [host, _] | [_, host, _] => host.parse().ok(),
        _ => None,
    }
}

/// Whether a command or image runs PostgreSQL.
fn is_postgres(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || c == '/' || c == ':')
        .any(|word| word == "postgres" || word == "postgresql" || word == "pg_ctl")
}

/// `localhost:PORT` and `127.0.0.1:PORT` in a text: the ports a dotenv file points at.
fn local_ports(text: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for host in ["localhost:", "127.0.0.1:"] {
        let mut rest = text;
        while let Some(at) = rest.find(host) {
            rest = &rest[at + host.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(port) = digits.parse::<u16>()
                && !ports.contains(&port)
            {
                ports.push(port);
            }
        }
    }
    ports
}

/// The berth.toml text for the project in `dir`, importing `procfile` when given. Every
/// guess is said in a comment beside what it produced.
pub fn generate(dir: &Path, procfile: Option<&Path>) -> Result<String> {
    let name = dir
        .file_name()
        .map(|name| sanitize(&name.to_string_lossy()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "project".to_string());
    let compose = COMPOSE_FILE_NAMES
        .iter()
        .copied()
        .find(|file| dir.join(file).is_file())
        .map(|file| ComposeSummary {
            file: file.to_string(),
            services: compose_services(&dir.join(file)),
        });
    let dotenv = dir.join(".env");
    let dotenv_text =
        crate::input::read_text(&dotenv, crate::input::MAX_TEXT_BYTES).unwrap_or_default();
    // `.env` pointing at a Compose port: each instance needs its own copy with its own
    // ports, which its processes then load.
    let compose_ports_in_env: Vec<(u16, String)> = match &compose {
        Some(compose) => local_ports(&dotenv_text)
            .into_iter()
            .filter_map(|port| Some((port, compose.publishing(port)?.to_string())))
            .collect(),
        None => Vec::new(),
    };
    let env_copy = dotenv.is_file() && !compose_ports_in_env.is_empty();
    let entries = match procfile {
        Some(path) => parse_procfile(path)?,
        None => Vec::new(),
    };

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# berth.toml, written by `berth init`. Reference: berth's README."
    );
    let _ = writeln!(out, "[project]\nname = \"{name}\"");
    if env_copy {
        let _ = writeln!(
            out,
            "env_file = \".env.berth\"  # every process loads this instance's copy of .env (below)"
        );
    } else if dotenv.is_file() {
        let _ = writeln!(
            out,
            "env_file = \".env\"  # every process loads .env, as foreman and honcho do"
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "[ports]\nstride = 100        # each instance moves every port by this much\n"
    );

    if let Some(compose) = &compose {
        let file = &compose.file;
        let _ = writeln!(
            out,
            "# Compose services come from `{file}` (resolved by the Compose tool); each instance\n\
             # gets its own project name, host ports (bound to 127.0.0.1), container, volume\n\
             # and network names."
        );
        for (service, ports, _) in &compose.services {
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
        for (service, ports, image) in &compose.services {
            if image.as_deref().is_some_and(is_postgres) && !ports.is_empty() {
                let _ = writeln!(
                    out,
                    "[services.{service}]\ndatabase = \"postgres\"  # its image is PostgreSQL: `berth db` dumps, restores, opens psql\n"
                );
            }
        }
    }

    if let Some(path) = procfile {
        let file = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# From {file}: one process service per line, run by sh as foreman does. Each gets\n\
             # PORT (web 5000, the others the next hundreds, as foreman), moved per instance."
        );
        let release = entries.iter().any(|entry| entry.service == "release");
        let mut next_port = PROCFILE_BASE_PORT;
        let web_first = entries.iter().any(|entry| entry.service == "web");
        if web_first {
            next_port += PROCFILE_PORT_STEP;
        }
        // Services the environment's URLs point at (Compose ports in .env).
        let dependencies: Vec<&String> = compose_ports_in_env
            .iter()
            .map(|(_, service)| service)
            .collect();
        for entry in &entries {
            let service = &entry.service;
            let _ = writeln!(out, "[services.{service}]");
            let _ = writeln!(out, "command = {}", toml_string(&entry.command));
            let _ = writeln!(out, "shell = true");
            if service == "release" {
                let _ = writeln!(
                    out,
                    "restart = \"never\"  # Heroku's release phase: runs to success before the others start\n"
                );
                continue;
            }
            let port = if service == "web" {
                PROCFILE_BASE_PORT
            } else {
                let port = next_port;
                next_port += PROCFILE_PORT_STEP;
                port
            };
            let _ = writeln!(
                out,
                "port = {port}        # given to the process as $PORT (and {{{{ port.{service} }}}})"
            );
            if service == "web" {
                let _ = writeln!(
                    out,
                    "ready = {{ http = \"/\", status = \"any\" }}  # web: ready once it answers HTTP, even a 404 on /"
                );
            } else if !entry.command.contains("PORT") {
                let _ = writeln!(
                    out,
                    "ready = {{ tcp = false }}  # it may never listen on its PORT: ready once started"
                );
            }
            if is_postgres(&entry.command) {
                let _ = writeln!(
                    out,
                    "database = \"postgres\"  # it runs PostgreSQL: `berth db` dumps, restores, opens psql"
                );
            }
            let mut depends: Vec<String> = Vec::new();
            if release {
                depends.push("release".to_string());
            }
            depends.extend(dependencies.iter().map(|name| name.to_string()));
            if !depends.is_empty() {
                let quoted: Vec<String> = depends.iter().map(|name| toml_string(name)).collect();
                let _ = writeln!(
                    out,
                    "depends_on = [{}]  # {}",
                    quoted.join(", "),
                    if release && depends.len() == 1 {
                        "the release step first".to_string()
                    } else {
                        "what its environment's URLs point at (and the release step)".to_string()
                    }
                );
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
        if file == ".env" && env_copy {
            let pointed: Vec<String> = compose_ports_in_env
                .iter()
                .map(|(port, service)| format!("{port} ({service})"))
                .collect();
            let _ = writeln!(
                out,
                "# .env points at Compose ports {}: each instance gets its own copy with its own\n\
                 # ports, and its processes load that copy.\n[[env_files]]\nsource = \".env\"\ntarget = \".env.berth\"\n",
                pointed.join(", ")
            );
            continue;
        }
        let _ = writeln!(
            out,
            "# A per-instance copy of {file}: localhost:PORT rewritten to the instance's ports.\n\
             # [[env_files]]\n# source = \"{file}\"\n# target = \"{file}.berth\"\n# set = {{ }}\n"
        );
    }
    if compose.is_none() && procfile.is_none() {
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
fn compose_services(file: &Path) -> Vec<(String, Vec<String>, Option<String>)> {
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
                    let image = service
                        .get("image")
                        .and_then(serde_json::Value::as_str)
                        .map(String::from);
                    (name.clone(), ports, image)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
