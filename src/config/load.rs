//! Finding, reading and validating berth.toml into a [`Config`].

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use toml::Spanned;

use super::ConfigError;
use super::model::{Config, DEFAULT_PORT_NAME, PortBase, ReadyConfig, ServiceConfig};
use super::raw::{RawCommand, RawConfig, RawPort, RawReady, RawService};
use super::template::{CommandTemplate, Placeholder, Template, TemplateError, Var};
use crate::identity::sanitize;
use crate::state::RestartPolicy;

pub const CONFIG_FILE_NAME: &str = "berth.toml";
const DEFAULT_STRIDE: u32 = 100;
const DEFAULT_AUTO_RANGE: (u16, u16) = (20000, 29999);
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

/// The nearest directory at or above `start` holding berth.toml, canonicalised (so a
/// symlinked project directory has one identity).
pub fn find_project_root(start: &Path) -> Result<PathBuf, ConfigError> {
    let canonical = fs_err::canonicalize(start).map_err(|source| ConfigError::Read {
        path: start.to_path_buf(),
        source,
    })?;
    canonical
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE_NAME).is_file())
        .map(Path::to_path_buf)
        .ok_or(ConfigError::NotFound { dir: canonical })
}

/// Reads and validates `<root>/berth.toml`.
pub fn load(root: &Path) -> Result<Config, ConfigError> {
    let path = root.join(CONFIG_FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    Loader {
        path: &path,
        text: &text,
    }
    .load(root)
}

struct Loader<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Loader<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, self.text.len());
        let mut snippet: String = self.text[start..end]
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        if snippet.is_empty() {
            snippet = self.text[line_start..]
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
        }
        if snippet.chars().count() > 120 {
            snippet = snippet.chars().take(117).collect::<String>() + "...";
        }
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
            snippet,
        }
    }

    /// An error inside a string value: `offset` counts from the string's first character,
    /// which follows the opening quote of the span.
    fn template_error(&self, span: &Range<usize>, error: &TemplateError) -> ConfigError {
        let start = (span.start + 1 + error.offset).min(span.end);
        self.error(start..span.end, error.message.clone())
    }

    fn load(&self, root: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(self.text).map_err(|error| {
            let span = error.span().unwrap_or(0..0);
            self.error(span, error.message().trim().to_string())
        })?;

        let project = match raw
            .project
            .as_ref()
            .and_then(|project| project.get_ref().name.as_ref())
        {
            Some(name) => {
                let value = name.get_ref();
                if value.is_empty() || sanitize(value) != *value {
                    return Err(self.error(
                        name.span(),
                        format!("project name `{value}` must be lowercase letters, digits and `-`"),
                    ));
                }
                value.clone()
            }
            None => {
                let directory = root
                    .file_name()
                    .map(|name| name.to_string_lossy())
                    .unwrap_or_default();
                let name = sanitize(&directory);
                if name.is_empty() {
                    "project".to_string()
                } else {
                    name
                }
            }
        };

        let (stride, auto_range) = self.ports_section(&raw)?;
        let services = self.services(&raw)?;
        self.check_names(&raw, &services)?;
        self.check_dependencies(&raw)?;
        self.check_duplicate_ports(&raw, &services)?;

        Ok(Config {
            path: self.path.to_path_buf(),
            root: root.to_path_buf(),
            project,
            stride,
            auto_range,
            services,
        })
    }

    fn ports_section(&self, raw: &RawConfig) -> Result<(u32, (u16, u16)), ConfigError> {
        let Some(ports) = &raw.ports else {
            return Ok((DEFAULT_STRIDE, DEFAULT_AUTO_RANGE));
        };
        let stride = match &ports.get_ref().stride {
            Some(stride) if (1..=10000).contains(stride.get_ref()) => *stride.get_ref() as u32,
            Some(stride) => {
                return Err(self.error(stride.span(), "`stride` must be between 1 and 10000"));
            }
            None => DEFAULT_STRIDE,
        };
        let range = match &ports.get_ref().range {
            Some(range) => match range.get_ref().as_slice() {
                [low, high] if 1024 <= *low && low <= high && *high <= 65535 => {
                    (*low as u16, *high as u16)
                }
                _ => {
                    return Err(self.error(
                        range.span(),
                        "`range` must be [LOW, HIGH] with 1024 <= LOW <= HIGH <= 65535",
                    ));
                }
            },
            None => DEFAULT_AUTO_RANGE,
        };
        Ok((stride, range))
    }

    fn services(&self, raw: &RawConfig) -> Result<IndexMap<String, ServiceConfig>, ConfigError> {
        let mut services = IndexMap::new();
        let mut env_names: HashMap<String, String> = HashMap::new();
        for (name, service) in &raw.services {
            if !is_valid_name(name.get_ref()) {
                return Err(self.error(
                    name.span(),
                    format!(
                        "service name `{}` must start with a lowercase letter or digit and hold only lowercase letters, digits, `-` and `_` (at most 63)",
                        name.get_ref()
                    ),
                ));
            }
            let variable = crate::env_vars::port_variable(name.get_ref(), None);
            if let Some(other) = env_names.insert(variable.clone(), name.get_ref().clone()) {
                return Err(self.error(
                    name.span(),
                    format!(
                        "services `{other}` and `{}` would share the variable {variable}",
                        name.get_ref()
                    ),
                ));
            }
            let config = self.service(service.get_ref())?;
            services.insert(name.get_ref().clone(), config);
        }
        Ok(services)
    }

    fn service(&self, raw: &RawService) -> Result<ServiceConfig, ConfigError> {
        let command = self.command(&raw.command, raw.shell)?;
        let cwd = raw.cwd.as_ref().map(|cwd| self.template(cwd)).transpose()?;
        let mut env = IndexMap::new();
        for (key, value) in &raw.env {
            if !is_env_name(key.get_ref()) {
                return Err(self.error(
                    key.span(),
                    format!(
                        "`{}` is not a valid environment variable name",
                        key.get_ref()
                    ),
                ));
            }
            env.insert(key.get_ref().clone(), self.template(value)?);
        }
        let ports = self.ports(raw)?;
        let ready = self.ready(raw, &ports)?;
        let restart = match &raw.restart {
            None => RestartPolicy::OnFailure,
            Some(policy) => match policy.get_ref().as_str() {
                "on-failure" => RestartPolicy::OnFailure,
                "always" => RestartPolicy::Always,
                "never" => RestartPolicy::Never,
                other => {
                    return Err(self.error(
                        policy.span(),
                        format!("unknown restart policy `{other}`; use \"on-failure\", \"always\" or \"never\""),
                    ));
                }
            },
        };
        let setup = raw
            .setup
            .as_ref()
            .map(|setup| {
                CommandTemplate::parse(setup.get_ref(), raw.shell)
                    .map_err(|error| self.template_error(&setup.span(), &error))
            })
            .transpose()?;
        let stop_grace = match &raw.stop_grace {
            None => DEFAULT_STOP_GRACE,
            Some(grace) => humantime::parse_duration(grace.get_ref()).map_err(|error| {
                self.error(
                    grace.span(),
                    format!("`stop_grace` is not a duration like \"5s\": {error}"),
                )
            })?,
        };
        Ok(ServiceConfig {
            command,
            cwd,
            env,
            ports,
            depends_on: raw
                .depends_on
                .iter()
                .map(|name| name.get_ref().clone())
                .collect(),
            ready,
            restart,
            setup,
            stop_grace,
        })
    }

    fn command(
        &self,
        command: &Spanned<RawCommand>,
        shell: bool,
    ) -> Result<CommandTemplate, ConfigError> {
        let span = command.span();
        match command.get_ref() {
            RawCommand::Line(line) => CommandTemplate::parse(line, shell)
                .map_err(|error| self.template_error(&span, &error)),
            RawCommand::Argv(_) if shell => Err(self.error(
                span,
                "`shell = true` needs `command` as one string, not an array",
            )),
            RawCommand::Argv(words) => {
                CommandTemplate::parse_argv(words).map_err(|error| self.error(span, error.message))
            }
        }
    }

    fn template(&self, value: &Spanned<String>) -> Result<Template, ConfigError> {
        Template::parse(value.get_ref()).map_err(|error| self.template_error(&value.span(), &error))
    }

    fn ports(&self, raw: &RawService) -> Result<IndexMap<String, PortBase>, ConfigError> {
        let mut ports = IndexMap::new();
        match (&raw.port, &raw.ports) {
            (Some(port), Some(_)) => {
                return Err(self.error(port.span(), "use either `port` or `ports`, not both"));
            }
            (Some(port), None) => {
                ports.insert(DEFAULT_PORT_NAME.to_string(), self.port(port)?);
            }
            (None, Some(table)) => {
                for (name, port) in table.get_ref() {
                    if !is_valid_name(name.get_ref()) {
                        return Err(self.error(
                            name.span(),
                            format!(
                                "port name `{}` must be lowercase letters, digits, `-` and `_`",
                                name.get_ref()
                            ),
                        ));
                    }
                    ports.insert(name.get_ref().clone(), self.port(port)?);
                }
                if ports.is_empty() {
                    return Err(self.error(
                        table.span(),
                        "`ports` is empty; remove it or declare a port",
                    ));
                }
            }
            (None, None) => {}
        }
        Ok(ports)
    }

    fn port(&self, port: &Spanned<RawPort>) -> Result<PortBase, ConfigError> {
        match port.get_ref() {
            RawPort::Number(number) if (1024..=65535).contains(number) => Ok(PortBase::Fixed(*number as u16)),
            RawPort::Number(number) => Err(self.error(
                port.span(),
                format!("port {number} is out of range: use 1024 to 65535 (ports under 1024 need privileges)"),
            )),
            RawPort::Word(word) if word == "auto" => Ok(PortBase::Auto),
            RawPort::Word(word) => Err(self.error(
                port.span(),
                format!("port `{word}` is neither a number nor \"auto\""),
            )),
        }
    }

    fn ready(
        &self,
        raw: &RawService,
        ports: &IndexMap<String, PortBase>,
    ) -> Result<ReadyConfig, ConfigError> {
        let Some(ready) = &raw.ready else {
            return Ok(ReadyConfig::Default);
        };
        let span = ready.span();
        let RawReady {
            tcp,
            http,
            exec,
            log,
        } = ready.get_ref();
        let given = [tcp.is_some(), http.is_some(), exec.is_some(), log.is_some()];
        if given.iter().filter(|given| **given).count() != 1 {
            return Err(self.error(span, "`ready` takes exactly one of tcp, http, exec, log"));
        }
        let needs_port = |kind: &str| {
            if ports.is_empty() {
                Err(self.error(
                    span.clone(),
                    format!("`ready = {{ {kind} = … }}` needs the service to declare a port"),
                ))
            } else {
                Ok(())
            }
        };
        if let Some(tcp) = tcp {
            if !tcp {
                return Ok(ReadyConfig::Default);
            }
            needs_port("tcp")?;
            return Ok(ReadyConfig::Tcp);
        }
        if let Some(path) = http {
            needs_port("http")?;
            if !path.starts_with('/') || path.chars().any(char::is_whitespace) {
                return Err(self.error(
                    span,
                    format!("`ready.http` must be a path starting with `/`, not `{path}`"),
                ));
            }
            return Ok(ReadyConfig::Http(path.clone()));
        }
        if let Some(line) = exec {
            let command = CommandTemplate::parse(line, raw.shell)
                .map_err(|error| self.error(span.clone(), error.message))?;
            return Ok(ReadyConfig::Exec(command));
        }
        let pattern = log.clone().unwrap_or_default();
        regex::Regex::new(&pattern).map_err(|error| {
            self.error(
                span,
                format!("`ready.log` is not a valid regular expression: {error}"),
            )
        })?;
        Ok(ReadyConfig::Log(pattern))
    }

    /// Every placeholder must name a service and port that exist.
    fn check_names(
        &self,
        raw: &RawConfig,
        services: &IndexMap<String, ServiceConfig>,
    ) -> Result<(), ConfigError> {
        for (name, raw_service) in &raw.services {
            let service = &services[name.get_ref()];
            let mut located: Vec<(Range<usize>, Vec<&Placeholder>)> = Vec::new();
            located.push((
                raw_service.get_ref().command.span(),
                service.command.placeholders(),
            ));
            if let (Some(span), Some(cwd)) = (
                raw_service.get_ref().cwd.as_ref().map(Spanned::span),
                &service.cwd,
            ) {
                located.push((span, cwd.placeholders().collect()));
            }
            for (key, value) in &raw_service.get_ref().env {
                located.push((
                    value.span(),
                    service.env[key.get_ref()].placeholders().collect(),
                ));
            }
            if let (Some(setup), Some(template)) = (&raw_service.get_ref().setup, &service.setup) {
                located.push((setup.span(), template.placeholders()));
            }
            if let (Some(ready), ReadyConfig::Exec(command)) =
                (&raw_service.get_ref().ready, &service.ready)
            {
                located.push((ready.span(), command.placeholders()));
            }
            for (span, placeholders) in located {
                for placeholder in placeholders {
                    if let Some(message) = unknown_reference(&placeholder.var, services) {
                        let error = TemplateError {
                            offset: placeholder.offset,
                            message,
                        };
                        return Err(self.template_error(&span, &error));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_dependencies(&self, raw: &RawConfig) -> Result<(), ConfigError> {
        let names: HashSet<&String> = raw.services.keys().map(Spanned::get_ref).collect();
        for (name, service) in &raw.services {
            for dependency in &service.get_ref().depends_on {
                if !names.contains(dependency.get_ref()) {
                    return Err(self.error(
                        dependency.span(),
                        format!(
                            "`{}` depends on `{}`, which is not a service",
                            name.get_ref(),
                            dependency.get_ref()
                        ),
                    ));
                }
                if dependency.get_ref() == name.get_ref() {
                    return Err(self.error(
                        dependency.span(),
                        format!("`{}` depends on itself", name.get_ref()),
                    ));
                }
            }
        }
        let graph: IndexMap<String, Vec<String>> = raw
            .services
            .iter()
            .map(|(name, service)| {
                (
                    name.get_ref().clone(),
                    service
                        .get_ref()
                        .depends_on
                        .iter()
                        .map(|d| d.get_ref().clone())
                        .collect(),
                )
            })
            .collect();
        if let Err(cycle) = crate::graph::start_order(&graph) {
            let span = raw
                .services
                .keys()
                .find(|name| *name.get_ref() == cycle[0])
                .map(Spanned::span)
                .unwrap_or(0..0);
            return Err(self.error(span, format!("dependency cycle: {}", cycle.join(" -> "))));
        }
        Ok(())
    }

    fn check_duplicate_ports(
        &self,
        raw: &RawConfig,
        services: &IndexMap<String, ServiceConfig>,
    ) -> Result<(), ConfigError> {
        let mut seen: HashMap<u16, String> = HashMap::new();
        for (name, service) in services {
            for port in service.ports.values() {
                if let PortBase::Fixed(number) = port
                    && let Some(other) = seen.insert(*number, name.clone())
                {
                    let span = raw
                        .services
                        .iter()
                        .find(|(key, _)| key.get_ref() == name)
                        .map(|(key, _)| key.span())
                        .unwrap_or(0..0);
                    return Err(self.error(
                        span,
                        format!("port {number} is declared by both `{other}` and `{name}`"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn unknown_reference(var: &Var, services: &IndexMap<String, ServiceConfig>) -> Option<String> {
    let (Var::Port { service, port } | Var::Url { service, port }) = var else {
        return None;
    };
    let Some(config) = services.get(service) else {
        return Some(format!("unknown service `{service}` in a template"));
    };
    match port {
        None if config.ports.is_empty() => Some(format!("service `{service}` declares no port")),
        Some(port) if !config.ports.contains_key(port) => Some(format!(
            "service `{service}` has no port named `{port}` (it has: {})",
            config.ports.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
        _ => None,
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), text).unwrap();
        load(dir.path())
    }

    fn error_of(text: &str) -> String {
        load_text(text).unwrap_err().to_string()
    }

    #[test]
    fn loads_a_full_service() {
        let config = load_text(
            r#"
[project]
name = "shop"
[ports]
stride = 10
range = [21000, 21999]
[services.db]
command = ["pg", "--port", "{{ port.db }}"]
port = 5432
[services.api]
command = "run --port {{ port.api.http }}"
ports = { http = 3000, admin = "auto" }
depends_on = ["db"]
ready = { http = "/health" }
restart = "always"
env = { DB = "postgres://127.0.0.1:{{ port.db }}/app_{{ instance.index }}" }
setup = "init {{ instance.data }}"
stop_grace = "2s"
"#,
        )
        .unwrap();
        assert_eq!(config.project, "shop");
        assert_eq!(config.stride, 10);
        let api = &config.services["api"];
        assert_eq!(api.ports["admin"], PortBase::Auto);
        assert_eq!(api.restart, RestartPolicy::Always);
        assert_eq!(api.stop_grace, Duration::from_secs(2));
    }

    #[test]
    fn errors_name_file_line_column_and_text() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[services.a]\ncommand = \"x\"\ncolour = 1\n",
                ":3:1:",
                "unknown field `colour`",
            ),
            (
                "[services.a]\ncommand = \"x {{ port.b }}\"\n",
                ":2:14:",
                "unknown service `b`",
            ),
            (
                "[services.a]\ncommand = \"x {{ instance.nope }}\"\n",
                ":2:14:",
                "unknown template name",
            ),
            (
                "[services.a]\ncommand = \"x\"\nport = 70000\n",
                ":3:8:",
                "out of range",
            ),
            (
                "[services.a]\ncommand = \"x\"\nport = 80\n",
                ":3:8:",
                "out of range",
            ),
            (
                "[services.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n",
                ":3:15:",
                "not a service",
            ),
            (
                "[services.a]\ncommand = \"x\"\nrestart = \"sometimes\"\n",
                ":3:11:",
                "unknown restart policy",
            ),
            (
                "[services.A]\ncommand = \"x\"\n",
                ":1:11:",
                "service name `A`",
            ),
            (
                "[services.a]\ncommand = \"x\"\nready = { http = \"/\" }\n",
                ":3:9:",
                "needs the service to declare a port",
            ),
            ("[services.a\ncommand = \"x\"\n", ":1:", ""),
            (
                "[services.a]\ncommand = \"x\"\nport = 3000\n[services.b]\ncommand = \"y\"\nport = 3000\n",
                ":4:11:",
                "declared by both",
            ),
            (
                "[services.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n[services.b]\ncommand = \"y\"\ndepends_on = [\"a\"]\n",
                ":1:11:",
                "dependency cycle",
            ),
            ("[ports]\nstride = 0\n", ":2:10:", "stride"),
            (
                "[services.a]\ncommand = \"echo 'x\"\n",
                ":2:",
                "unbalanced quotes",
            ),
        ];
        for (text, location, message) in cases {
            let error = error_of(text);
            assert!(
                error.contains(&format!("{CONFIG_FILE_NAME}{location}")),
                "{text:?}: {error}"
            );
            assert!(error.contains(message), "{text:?}: {error}");
        }
    }

    #[test]
    fn default_project_name_is_the_sanitised_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("My Shop");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join(CONFIG_FILE_NAME), "").unwrap();
        assert_eq!(load(&root).unwrap().project, "my-shop");
    }
}
