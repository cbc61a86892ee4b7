//! The template language of berth.toml: `{{ port.S }}`, `{{ url.S }}`, `{{ host.S }}`,
//! `{{ public_url.S }}`, `{{ instance.* }}`, …

use std::fmt;

/// A string with `{{ … }}` placeholders, parsed once and rendered per instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Placeholder),
}

/// One `{{ … }}` and where it stood in the source string (byte offset), for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub var: Var,
    pub offset: usize,
    pub text: String,
}

/// What a placeholder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `port.S` (the service's only or first port) or `port.S.NAME`.
    Port {
        service: String,
        port: Option<String>,
    },
    /// `url.S` or `url.S.NAME`: `http://127.0.0.1:PORT`.
    Url {
        service: String,
        port: Option<String>,
    },
    /// `host.S`: the service's router name, `S.INSTANCE.localhost`.
    Host {
        service: String,
    },
    /// `public_url.S`: the service's router URL, `http://S.INSTANCE.localhost:PORT`
    /// (the router's port; `https://` when it serves HTTPS).
    PublicUrl {
        service: String,
    },
    InstanceName,
    InstanceIndex,
    InstanceRoot,
    InstanceData,
    InstancePortOffset,
    ProjectName,
}

/// A syntax error or unknown name, located by byte offset inside the source string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut consumed = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after_open = &rest[open + 2..];
            let Some(close) = after_open.find("}}") else {
                return Err(TemplateError {
                    offset: consumed + open,
                    message: "unclosed `{{`: a placeholder ends with `}}`".to_string(),
                });
            };
            let text = after_open[..close].trim();
            let offset = consumed + open;
            let var = parse_var(text).map_err(|message| TemplateError { offset, message })?;
            parts.push(Part::Var(Placeholder {
                var,
                offset,
                text: text.to_string(),
            }));
            let advance = open + 2 + close + 2;
            consumed += advance;
            rest = &rest[advance..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Whether it names the instance (its name, index, root, data or offset).
    pub fn names_instance(&self) -> bool {
        self.placeholders().any(|placeholder| {
            matches!(
                placeholder.var,
                Var::InstanceName
                    | Var::InstanceIndex
                    | Var::InstanceRoot
                    | Var::InstanceData
                    | Var::InstancePortOffset
            )
        })
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|part| match part {
            Part::Var(placeholder) => Some(placeholder),
            Part::Text(_) => None,
        })
    }

    /// Renders with `value` supplying each variable's text.
    pub fn render(&self, value: &dyn Fn(&Var) -> String) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::Var(placeholder) => value(&placeholder.var),
            })
            .collect()
    }
}

fn parse_var(text: &str) -> Result<Var, String> {
    let segments: Vec<&str> = text.split('.').collect();
    let unknown = || {
        format!(
            "unknown template name `{text}`; known: port.SERVICE, port.SERVICE.NAME, url.SERVICE, \
             host.SERVICE, public_url.SERVICE, instance.name, instance.index, instance.root, instance.data, instance.port_offset, project.name"
        )
    };
    let var = match segments.as_slice() {
        ["port", service] => Var::Port {
            service: service.to_string(),
            port: None,
        },
        ["port", service, port] => Var::Port {
            service: service.to_string(),
            port: Some(port.to_string()),
        },
        ["url", service] => Var::Url {
            service: service.to_string(),
            port: None,
        },
        ["url", service, port] => Var::Url {
            service: service.to_string(),
            port: Some(port.to_string()),
        },
        ["host", service] => Var::Host {
            service: service.to_string(),
        },
        ["public_url", service] => Var::PublicUrl {
            service: service.to_string(),
        },
        ["instance", "name"] => Var::InstanceName,
        ["instance", "index"] => Var::InstanceIndex,
        ["instance", "root"] => Var::InstanceRoot,
        ["instance", "data"] => Var::InstanceData,
        ["instance", "port_offset"] => Var::InstancePortOffset,
        ["project", "name"] => Var::ProjectName,
        _ => return Err(unknown()),
    };
    if segments.iter().any(|segment| segment.is_empty()) {
        return Err(unknown());
    }
    Ok(var)
}

/// A command: argv words (each a template), or one shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandTemplate {
    Argv(Vec<Template>),
    Shell(Template),
}

// Placeholders are swapped for a pair of private-use markers while the line is split
// into words, so that `{{ port.api }}` (which contains spaces) stays one unit and a
// value containing spaces (a root path) can never split a word when rendered. The pair
// is one the line itself does not contain.
#[derive(Clone, Copy)]
struct Marks {
    open: char,
    close: char,
}

impl Marks {
    fn unused_in(line: &str) -> Option<Marks> {
        ('\u{E000}'..='\u{F8FE}')
            .step_by(2)
            .filter_map(|open| {
                Some(Marks {
                    open,
                    close: char::from_u32(u32::from(open) + 1)?,
                })
            })
            .find(|marks| !line.contains(marks.open) && !line.contains(marks.close))
    }
}

impl CommandTemplate {
    /// Parses a command line. Without `shell`, it is split into words like a POSIX shell
    /// would (quotes, backslashes) but never run through one.
    pub fn parse(line: &str, shell: bool) -> Result<Self, TemplateError> {
        let whole = Template::parse(line)?;
        if shell {
            return Ok(CommandTemplate::Shell(whole));
        }
        let marks = Marks::unused_in(line).ok_or_else(|| TemplateError {
            offset: 0,
            message: "the command uses every private-use character".to_string(),
        })?;
        let mut marked = String::new();
        let mut placeholders = Vec::new();
        for part in &whole.parts {
            match part {
                Part::Text(text) => marked.push_str(text),
                Part::Var(placeholder) => {
                    marked.push(marks.open);
                    marked.push_str(&placeholders.len().to_string());
                    marked.push(marks.close);
                    placeholders.push(placeholder.clone());
                }
            }
        }
        let words = shlex::split(&marked).ok_or_else(|| TemplateError {
            offset: 0,
            message: "unbalanced quotes in the command".to_string(),
        })?;
        if words.is_empty() {
            return Err(TemplateError {
                offset: 0,
                message: "the command is empty".to_string(),
            });
        }
        Ok(CommandTemplate::Argv(
            words
                .iter()
                .map(|word| unmark(word, &placeholders, marks))
                .collect(),
        ))
    }

    /// Parses an argv given as a TOML array: every element is one word, never split.
    pub fn parse_argv(words: &[String]) -> Result<Self, TemplateError> {
        if words.is_empty() {
            return Err(TemplateError {
                offset: 0,
                message: "the command is empty".to_string(),
            });
        }
        let words = words
            .iter()
            .map(|word| Template::parse(word))
            .collect::<Result<_, _>>()?;
        Ok(CommandTemplate::Argv(words))
    }

    pub fn placeholders(&self) -> Vec<&Placeholder> {
        match self {
            CommandTemplate::Argv(words) => words.iter().flat_map(Template::placeholders).collect(),
            CommandTemplate::Shell(line) => line.placeholders().collect(),
        }
    }

    /// Renders to an argv. A shell line becomes `sh -c LINE` with every value quoted, so a
    /// value can never inject shell syntax.
    pub fn render(&self, value: &dyn Fn(&Var) -> String) -> Vec<String> {
        match self {
            CommandTemplate::Argv(words) => words.iter().map(|word| word.render(value)).collect(),
            CommandTemplate::Shell(line) => {
                let quoted = |var: &Var| {
                    let text = value(var);
                    // Only a NUL byte cannot be quoted; no path or port holds one.
                    let text = text.replace('\0', "");
                    shlex::try_quote(&text)
                        .map(|quoted| quoted.into_owned())
                        .unwrap_or_default()
                };
                vec!["sh".to_string(), "-c".to_string(), line.render(&quoted)]
            }
        }
    }
}

fn unmark(word: &str, placeholders: &[Placeholder], marks: Marks) -> Template {
    let mut parts = Vec::new();
    let mut rest = word;
    while let Some(open) = rest.find(marks.open) {
        let Some(close) = rest[open..].find(marks.close).map(|close| open + close) else {
            break;
        };
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let number: usize = rest[open + marks.open.len_utf8()..close]
            .parse()
            .unwrap_or(usize::MAX);
        match placeholders.get(number) {
            Some(placeholder) => parts.push(Part::Var(placeholder.clone())),
            None => parts.push(Part::Text(
                rest[open..close + marks.close.len_utf8()].to_string(),
            )),
        }
        rest = &rest[close + marks.close.len_utf8()..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Template { parts }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(var: &Var) -> String {
        match var {
            Var::Port {
                service,
                port: None,
            } if service == "api" => "4100".to_string(),
            Var::Port {
                port: Some(name), ..
            } => format!("port-{name}"),
            Var::InstanceRoot => "/tmp/my root".to_string(),
            Var::InstanceName => "shop-2".to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn parses_and_renders_placeholders_with_or_without_spaces() {
        let template =
            Template::parse("http://127.0.0.1:{{port.api}}/x/{{ instance.name }}").unwrap();
        assert_eq!(template.render(&values), "http://127.0.0.1:4100/x/shop-2");
    }

    #[test]
    fn unknown_names_and_unclosed_braces_are_located() {
        let error = Template::parse("abc {{ nope.x }}").unwrap_err();
        assert_eq!(error.offset, 4);
        assert!(error.message.contains("unknown template name `nope.x`"));
        assert_eq!(Template::parse("x {{ port.api").unwrap_err().offset, 2);
        assert!(Template::parse("{{ port..x }}").is_err());
        assert!(Template::parse("{{ instance }}").is_err());
    }

    #[test]
    fn command_words_keep_placeholders_whole_and_values_unsplit() {
        let command = CommandTemplate::parse(
            "serve --port {{ port.api }} --dir '{{ instance.root }}/d' x",
            false,
        )
        .unwrap();
        assert_eq!(
            command.render(&values),
            vec!["serve", "--port", "4100", "--dir", "/tmp/my root/d", "x"]
        );
        let unquoted = CommandTemplate::parse("ls {{ instance.root }}", false).unwrap();
        assert_eq!(unquoted.render(&values), vec!["ls", "/tmp/my root"]);
    }

    #[test]
    fn shell_commands_quote_every_value() {
        let command = CommandTemplate::parse("cd {{ instance.root }} && run", true).unwrap();
        assert_eq!(
            command.render(&values),
            vec!["sh", "-c", "cd '/tmp/my root' && run"]
        );
    }

    #[test]
    fn bad_commands_are_errors() {
        assert!(CommandTemplate::parse("echo 'open", false).is_err());
        assert!(CommandTemplate::parse("   ", false).is_err());
        assert!(CommandTemplate::parse_argv(&[]).is_err());
    }
}
