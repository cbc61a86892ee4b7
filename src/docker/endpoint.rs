//! Which Docker engine to talk to, found as the docker CLI finds it: `DOCKER_HOST`, else
//! the context `DOCKER_CONTEXT` names, else the docker config's `currentContext`, else the
//! default socket. berth hands the endpoint it found to every `docker` and Compose child it
//! runs, so berth and the Compose tool always talk to the same engine.
//!
//! A named context lives in the docker config directory (`DOCKER_CONFIG`, else
//! `~/.docker`): its endpoint in `contexts/meta/<sha256 of the name>/meta.json`, its TLS
//! files (`ca.pem`, `cert.pem`, `key.pem`) in `contexts/tls/<sha256 of the name>/docker/`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::EngineError;

/// The engine of the `default` context when `DOCKER_HOST` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The context name that means "no context": `DOCKER_HOST` or the default socket.
const DEFAULT_CONTEXT: &str = "default";

/// The variables children get from [`Endpoint::configure`].
const DOCKER_HOST: &str = "DOCKER_HOST";
const DOCKER_CONTEXT: &str = "DOCKER_CONTEXT";
const DOCKER_TLS: &str = "DOCKER_TLS";
const DOCKER_TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";

/// A Docker engine's address, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As the docker CLI writes it: `unix:///var/run/docker.sock`, `tcp://10.0.0.2:2376`,
    /// `ssh://me@box`.
    pub host: String,
    /// `None` for a plain connection.
    pub tls: Option<Tls>,
    pub origin: Origin,
}

/// How to secure a `tcp://` connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// The directory holding `ca.pem`, `cert.pem` and `key.pem`, if any.
    pub cert_dir: Option<PathBuf>,
    /// Whether the engine's certificate is checked against `ca.pem`.
    pub verify: bool,
}

/// Where an endpoint came from, for messages and for what children are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Neither `DOCKER_HOST` nor a context: the default socket.
    Default,
    /// The `DOCKER_HOST` variable.
    DockerHost,
    /// A named context.
    Context { name: String, selected_by: Selector },
}

/// What named the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The `DOCKER_CONTEXT` variable.
    Variable,
    /// `currentContext` in this `config.json` (set by `docker context use`).
    CurrentContext { config: PathBuf },
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Variable => write!(f, "DOCKER_CONTEXT"),
            Selector::CurrentContext { config } => {
                write!(f, "`currentContext` in `{}`", config.display())
            }
        }
    }
}

/// The variables and files resolution reads, gathered once so that the rules can be
/// tested without touching the process's own environment.
#[derive(Debug, Clone, Default)]
pub struct DockerEnv {
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    /// The docker config directory: `DOCKER_CONFIG`, else `~/.docker`.
    pub config_dir: Option<PathBuf>,
    pub tls: bool,
    pub tls_verify: bool,
    pub cert_path: Option<PathBuf>,
}

impl DockerEnv {
    /// Reads the process's environment. An empty variable counts as unset, as in the
    /// docker CLI.
    pub fn from_process() -> DockerEnv {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        let text = |name: &str| var(name).map(|value| value.to_string_lossy().into_owned());
        let config_dir = var("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".docker")));
        DockerEnv {
            docker_host: text(DOCKER_HOST),
            docker_context: text(DOCKER_CONTEXT),
            config_dir,
            tls: var(DOCKER_TLS).is_some(),
            tls_verify: var(DOCKER_TLS_VERIFY).is_some(),
            cert_path: var(DOCKER_CERT_PATH).map(PathBuf::from),
        }
    }
}

impl Endpoint {
    /// The engine the docker CLI would use in this process's environment.
    pub fn from_env() -> Result<Endpoint, EngineError> {
        resolve(&DockerEnv::from_process())
    }

    /// Points a `docker` or Compose command at this engine: `DOCKER_HOST` set and
    /// `DOCKER_CONTEXT` removed, so neither the variable nor the config's current context
    /// can send the child elsewhere; for a context, its TLS settings as variables.
    pub fn configure<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            .env(DOCKER_HOST, &self.host)
            .env_remove(DOCKER_CONTEXT);
        // With DOCKER_HOST or the default socket the child reads the same TLS variables
        // berth read; a context brings its own, and the caller's must not leak in.
        if let Origin::Context { .. } = self.origin {
            command
                .env_remove(DOCKER_TLS)
                .env_remove(DOCKER_TLS_VERIFY)
                .env_remove(DOCKER_CERT_PATH);
            if let Some(tls) = &self.tls {
                if let Some(dir) = &tls.cert_dir {
                    command.env(DOCKER_CERT_PATH, dir);
                }
                // Any non-empty value means "yes" to both the docker CLI and docker-py,
                // so verification off is the variable's absence.
                if tls.verify {
                    command.env(DOCKER_TLS_VERIFY, "1");
                } else {
                    command.env(DOCKER_TLS, "1");
                }
            }
        }
        command
    }

    /// A command running `program` (`docker`, a Compose tool) against this engine.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        self.configure(&mut command);
        command
    }

    /// The context's name, if the endpoint comes from one.
    pub fn context(&self) -> Option<&str> {
        match &self.origin {
            Origin::Context { name, .. } => Some(name),
            Origin::Default | Origin::DockerHost => None,
        }
    }
}

impl fmt::Display for Endpoint {
    /// `` `unix:///var/run/docker.sock` ``, with `` (docker context `NAME`) `` after it
    /// when a context chose it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.host)?;
        if let Some(name) = self.context() {
            write!(f, " (docker context `{name}`)")?;
        }
        Ok(())
    }
}

/// Resolves the endpoint as the docker CLI does.
pub fn resolve(env: &DockerEnv) -> Result<Endpoint, EngineError> {
    if let Some(host) = &env.docker_host {
        return Ok(Endpoint {
            host: host.clone(),
            tls: variables_tls(env),
            origin: Origin::DockerHost,
        });
    }
    let selected = match &env.docker_context {
        Some(name) => Some((name.clone(), Selector::Variable)),
        None => match &env.config_dir {
            Some(dir) => {
                let config = dir.join("config.json");
                read_current_context(&config)?
                    .map(|name| (name, Selector::CurrentContext { config }))
            }
            None => None,
        },
    };
    match selected {
        Some((name, selected_by)) if name != DEFAULT_CONTEXT => {
            named_context(env.config_dir.as_deref(), name, selected_by)
        }
        _ => Ok(Endpoint {
            host: DEFAULT_HOST.to_string(),
            tls: variables_tls(env),
            origin: Origin::Default,
        }),
    }
}

/// TLS as `DOCKER_TLS`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` say (the certificates
/// default to the config directory, as in the docker CLI).
fn variables_tls(env: &DockerEnv) -> Option<Tls> {
    (env.tls || env.tls_verify).then(|| Tls {
        cert_dir: env.cert_path.clone().or_else(|| env.config_dir.clone()),
        verify: env.tls_verify,
    })
}

/// `currentContext` from a docker `config.json`; `None` when the file or the key is
/// missing.
fn read_current_context(config: &Path) -> Result<Option<String>, EngineError> {
    let text = match std::fs::read_to_string(config) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(EngineError::Config {
                path: config.to_path_buf(),
                detail: error.to_string(),
            });
        }
    };
    parse_current_context(&text).map_err(|detail| EngineError::Config {
        path: config.to_path_buf(),
        detail,
    })
}

/// Reads `currentContext` from the text of a docker `config.json`.
fn parse_current_context(text: &str) -> Result<Option<String>, String> {
    #[derive(Deserialize)]
    struct ConfigFile {
        #[serde(rename = "currentContext", default)]
        current_context: Option<String>,
    }
    if text.trim().is_empty() {
        return Ok(None);
    }
    let config: ConfigFile = serde_json::from_str(text).map_err(|error| error.to_string())?;
    Ok(config.current_context.filter(|name| !name.is_empty()))
}

/// The endpoint of the context `name`, from its `meta.json` and TLS directory.
fn named_context(
    config_dir: Option<&Path>,
    name: String,
    selected_by: Selector,
) -> Result<Endpoint, EngineError> {
    let unknown = |meta: PathBuf| EngineError::UnknownContext {
        name: name.clone(),
        selected_by: selected_by.to_string(),
        meta,
    };
    let Some(config_dir) = config_dir else {
        return Err(unknown(PathBuf::from("~/.docker/contexts/meta")));
    };
    let hash = context_hash(&name);
    let meta = config_dir
        .join("contexts/meta")
        .join(&hash)
        .join("meta.json");
    let text = match std::fs::read_to_string(&meta) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(unknown(meta)),
        Err(error) => {
            return Err(EngineError::Config {
                path: meta,
                detail: error.to_string(),
            });
        }
    };
    let docker = parse_meta(&text).map_err(|detail| EngineError::Config {
        path: meta.clone(),
        detail,
    })?;
    let tls_dir = config_dir.join("contexts/tls").join(&hash).join("docker");
    let cert_dir = tls_dir.is_dir().then_some(tls_dir);
    // As in the docker CLI: TLS when the context has TLS files or skips verification.
    let tls = (cert_dir.is_some() || docker.skip_tls_verify).then_some(Tls {
        cert_dir,
        verify: !docker.skip_tls_verify,
    });
    Ok(Endpoint {
        host: docker.host,
        tls,
        origin: Origin::Context { name, selected_by },
    })
}

/// The `docker` endpoint of a context, as its `meta.json` stores it.
#[derive(Debug, PartialEq, Eq)]
struct DockerEndpointMeta {
    host: String,
    skip_tls_verify: bool,
}

/// Reads `Endpoints.docker` from the text of a context's `meta.json`.
fn parse_meta(text: &str) -> Result<DockerEndpointMeta, String> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "Endpoints", default)]
        endpoints: Option<Endpoints>,
    }
    #[derive(Deserialize)]
    struct Endpoints {
        #[serde(default)]
        docker: Option<Docker>,
    }
    #[derive(Deserialize)]
    struct Docker {
        #[serde(rename = "Host", default)]
        host: Option<String>,
        #[serde(rename = "SkipTLSVerify", default)]
        skip_tls_verify: Option<bool>,
    }
    let meta: Meta = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let docker = meta
        .endpoints
        .and_then(|endpoints| endpoints.docker)
        .ok_or("the context has no `Endpoints.docker`")?;
    let host = docker
        .host
        .filter(|host| !host.is_empty())
        .ok_or("the context's docker endpoint has no `Host`")?;
    Ok(DockerEndpointMeta {
        host,
        skip_tls_verify: docker.skip_tls_verify.unwrap_or(false),
    })
}

/// The directory name the docker CLI stores a context under: its name's SHA-256, in hex.
fn context_hash(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A docker config directory in a temp dir, with contexts written as the docker CLI
    /// writes them.
    struct ConfigDir(tempfile::TempDir);

    impl ConfigDir {
        fn new() -> ConfigDir {
            ConfigDir(tempfile::tempdir().unwrap())
        }

        fn path(&self) -> PathBuf {
            self.0.path().to_path_buf()
        }

        fn config(&self, text: &str) {
            fs_err::write(self.0.path().join("config.json"), text).unwrap();
        }

        fn context(&self, name: &str, host: &str, skip_tls_verify: bool) {
            let dir = self.0.path().join("contexts/meta").join(context_hash(name));
            fs_err::create_dir_all(&dir).unwrap();
            let meta = serde_json::json!({
                "Name": name,
                "Metadata": {},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_tls_verify}},
            });
            fs_err::write(dir.join("meta.json"), meta.to_string()).unwrap();
        }

        fn tls_files(&self, name: &str) -> PathBuf {
            let dir = self
                .0
                .path()
                .join("contexts/tls")
                .join(context_hash(name))
                .join("docker");
            fs_err::create_dir_all(&dir).unwrap();
            for file in ["ca.pem", "cert.pem", "key.pem"] {
                fs_err::write(dir.join(file), "").unwrap();
            }
            dir
        }

        fn env(&self) -> DockerEnv {
            DockerEnv {
                config_dir: Some(self.path()),
                ..DockerEnv::default()
            }
        }
    }

    #[test]
    fn hashes_names_as_the_docker_cli_does() {
        // `docker context create bctx` stores it under this directory.
        assert_eq!(
            context_hash("bctx"),
            "b09e1af113842fb1ec11c00d3e755d3abea4520d17c2440e23f77b3397edce89"
        );
    }

    #[test]
    fn nothing_set_means_the_default_socket() {
        let dir = ConfigDir::new();
        let endpoint = resolve(&dir.env()).unwrap();
        assert_eq!(
            endpoint,
            Endpoint {
                host: DEFAULT_HOST.to_string(),
                tls: None,
                origin: Origin::Default,
            }
        );
        assert_eq!(endpoint.to_string(), "`unix:///var/run/docker.sock`");
        // Without HOME or DOCKER_CONFIG there is no config to read either.
        assert_eq!(resolve(&DockerEnv::default()).unwrap().host, DEFAULT_HOST);
    }

    #[test]
    fn docker_host_comes_first() {
        let dir = ConfigDir::new();
        dir.config(r#"{"currentContext": "remote"}"#);
        dir.context("remote", "tcp://127.0.0.1:1", false);
        let env = DockerEnv {
            docker_host: Some("unix:///run/other.sock".to_string()),
            docker_context: Some("remote".to_string()),
            ..dir.env()
        };
        let endpoint = resolve(&env).unwrap();
        assert_eq!(endpoint.host, "unix:///run/other.sock");
        assert_eq!(endpoint.origin, Origin::DockerHost);
        assert_eq!(endpoint.context(), None);
    }

    #[test]
    fn docker_context_comes_before_the_current_context() {
        let dir = ConfigDir::new();
        dir.config(r#"{"auths": {}, "currentContext": "current"}"#);
        dir.context("current", "unix:///run/current.sock", false);
        dir.context("chosen", "unix:///run/chosen.sock", false);
        let env = DockerEnv {
            docker_context: Some("chosen".to_string()),
            ..dir.env()
        };
        let endpoint = resolve(&env).unwrap();
        assert_eq!(endpoint.host, "unix:///run/chosen.sock");
        assert_eq!(
            endpoint.origin,
            Origin::Context {
                name: "chosen".to_string(),
                selected_by: Selector::Variable
            }
        );
        assert_eq!(
            endpoint.to_string(),
            "`unix:///run/chosen.sock` (docker context `chosen`)"
        );

        let endpoint = resolve(&dir.env()).unwrap();
        assert_eq!(endpoint.host, "unix:///run/current.sock");
        assert_eq!(
            endpoint.origin,
            Origin::Context {
                name: "current".to_string(),
                selected_by: Selector::CurrentContext {
                    config: dir.path().join("config.json")
                }
            }
        );
    }

    #[test]
    fn the_default_context_is_the_default_socket_or_docker_host() {
        let dir = ConfigDir::new();
        dir.config(r#"{"currentContext": "default"}"#);
        assert_eq!(resolve(&dir.env()).unwrap().origin, Origin::Default);
        let env = DockerEnv {
            docker_context: Some("default".to_string()),
            ..dir.env()
        };
        assert_eq!(resolve(&env).unwrap().host, DEFAULT_HOST);
    }

    #[test]
    fn an_unknown_context_is_named() {
        let dir = ConfigDir::new();
        let env = DockerEnv {
            docker_context: Some("nope".to_string()),
            ..dir.env()
        };
        let error = resolve(&env).unwrap_err();
        assert!(
            matches!(&error, EngineError::UnknownContext { name, meta, .. }
                if name == "nope" && meta.ends_with(format!("{}/meta.json", context_hash("nope")))),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "docker context `nope` (named by DOCKER_CONTEXT) does not exist"
        );

        dir.config(r#"{"currentContext": "gone"}"#);
        let error = resolve(&dir.env()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "docker context `gone` (named by `currentContext` in `{}`) does not exist",
                dir.path().join("config.json").display()
            )
        );
    }

    #[test]
    fn reads_the_config_file() {
        for (text, expected) in [
            ("", Ok(None)),
            ("{}", Ok(None)),
            (r#"{"currentContext": ""}"#, Ok(None)),
            (
                r#"{"currentContext": "x", "credsStore": "desktop"}"#,
                Ok(Some("x")),
            ),
            ("{", Err(())),
            (r#"{"currentContext": 3}"#, Err(())),
        ] {
            assert_eq!(
                parse_current_context(text).map_err(|_| ()),
                expected.map(|name| name.map(String::from)),
                "{text}"
            );
        }
        let dir = ConfigDir::new();
        dir.config("not json");
        let error = resolve(&dir.env()).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "cannot read the docker CLI's configuration `{}`: ",
                dir.path().join("config.json").display()
            )),
            "{error}"
        );
    }

    #[test]
    fn reads_context_meta() {
        assert_eq!(
            parse_meta(
                r#"{"Name":"bctx","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///var/run/docker.sock","SkipTLSVerify":false}}}"#
            ),
            Ok(DockerEndpointMeta {
                host: "unix:///var/run/docker.sock".to_string(),
                skip_tls_verify: false,
            })
        );
        assert_eq!(
            parse_meta(r#"{"Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":true}}}"#),
            Ok(DockerEndpointMeta {
                host: "tcp://h:2376".to_string(),
                skip_tls_verify: true,
            })
        );
        assert!(
            !parse_meta(r#"{"Endpoints":{"docker":{"Host":"ssh://me@box"}}}"#)
                .unwrap()
                .skip_tls_verify
        );
        for bad in [
            "",
            "[]",
            r#"{"Name":"k8s","Endpoints":{"kubernetes":{}}}"#,
            r#"{"Endpoints":{"docker":{"Host":""}}}"#,
            r#"{"Endpoints":{"docker":{"SkipTLSVerify":false}}}"#,
        ] {
            assert!(parse_meta(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_context_brings_its_tls_files() {
        let dir = ConfigDir::new();
        dir.context("secure", "tcp://127.0.0.1:2376", false);
        let cert_dir = dir.tls_files("secure");
        dir.context("insecure", "tcp://127.0.0.1:2376", true);
        dir.context("plain", "tcp://127.0.0.1:2375", false);
        let context = |name: &str| {
            resolve(&DockerEnv {
                docker_context: Some(name.to_string()),
                // The caller's variables are not the context's.
                tls_verify: true,
                cert_path: Some(PathBuf::from("/elsewhere")),
                ..dir.env()
            })
            .unwrap()
        };
        assert_eq!(
            context("secure").tls,
            Some(Tls {
                cert_dir: Some(cert_dir.clone()),
                verify: true
            })
        );
        assert_eq!(
            context("insecure").tls,
            Some(Tls {
                cert_dir: None,
                verify: false
            })
        );
        assert_eq!(context("plain").tls, None);

        let env_of = |endpoint: &Endpoint| {
            let mut command = Command::new("docker");
            endpoint.configure(&mut command);
            command
                .get_envs()
                .map(|(key, value)| {
                    (
                        key.to_string_lossy().into_owned(),
                        value.map(|value| value.to_string_lossy().into_owned()),
                    )
                })
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let secure = env_of(&context("secure"));
        assert_eq!(
            secure["DOCKER_HOST"].as_deref(),
            Some("tcp://127.0.0.1:2376")
        );
        assert_eq!(secure["DOCKER_CONTEXT"], None);
        assert_eq!(secure["DOCKER_TLS_VERIFY"].as_deref(), Some("1"));
        assert_eq!(secure["DOCKER_TLS"], None);
        assert_eq!(
            secure["DOCKER_CERT_PATH"].as_deref(),
            Some(cert_dir.to_str().unwrap())
        );
        let insecure = env_of(&context("insecure"));
        assert_eq!(insecure["DOCKER_TLS_VERIFY"], None);
        assert_eq!(insecure["DOCKER_TLS"].as_deref(), Some("1"));
        assert_eq!(insecure["DOCKER_CERT_PATH"], None);
        let plain = env_of(&context("plain"));
        assert_eq!(plain["DOCKER_TLS_VERIFY"], None);
        assert_eq!(plain["DOCKER_TLS"], None);
        assert_eq!(plain["DOCKER_CERT_PATH"], None);
    }

    #[test]
    fn docker_host_keeps_the_tls_variables() {
        let env = DockerEnv {
            docker_host: Some("tcp://127.0.0.1:2376".to_string()),
            docker_context: Some("ignored".to_string()),
            config_dir: Some(PathBuf::from("/home/me/.docker")),
            tls_verify: true,
            ..DockerEnv::default()
        };
        let endpoint = resolve(&env).unwrap();
        assert_eq!(
            endpoint.tls,
            Some(Tls {
                cert_dir: Some(PathBuf::from("/home/me/.docker")),
                verify: true
            })
        );
        let mut command = Command::new("docker");
        endpoint.configure(&mut command);
        let envs: Vec<_> = command.get_envs().collect();
        // Only the host and the context are touched; the child reads the same TLS
        // variables berth read.
        assert_eq!(envs.len(), 2, "{envs:?}");
        let env = DockerEnv {
            cert_path: Some(PathBuf::from("/certs")),
            tls: true,
            tls_verify: false,
            ..env
        };
        assert_eq!(
            resolve(&env).unwrap().tls,
            Some(Tls {
                cert_dir: Some(PathBuf::from("/certs")),
                verify: false
            })
        );
    }
}
