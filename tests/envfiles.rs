//! End-to-end: `[[env_files]]` copies a real-world .env per instance, rewrites its loopback
//! ports, keeps everything else, and hands the values to the services. Ports 15600-15799.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;

const DOTENV: &str = r#"# Database (local: localhost:15600)
export DATABASE_URL="postgres://app:p@ss:word@localhost:15600/app?sslmode=disable"
REDIS_URL=redis://127.0.0.1:15610/0
API_BASE='http://localhost:15620/api'
COLOR=#fff   # a colour
EMPTY=
PEM="-----BEGIN KEY-----
abc
-----END KEY-----"
SECRET=keep-me
"#;

fn project(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    let h = helper();
    let config = format!(
        r#"[services.db]
command = "{h} serve --port {{{{ port.db }}}}"
port = 15600

[services.cache]
command = "{h} serve --port {{{{ port.cache }}}}"
port = 15610

[services.api]
command = "{h} serve --port {{{{ port.api }}}}"
port = 15620
env_file = ".env.local"

[[env_files]]
source = ".env"
target = ".env.local"
set = {{ INSTANCE = "{{{{ instance.name }}}}", API_URL = "{{{{ url.api }}}}", SECRET = "new value # with $ and \"quotes\"" }}
"#
    );
    let dir = sandbox.project(name, &config);
    std::fs::write(dir.join(".env"), DOTENV).unwrap();
    dir
}

#[test]
fn env_files_are_per_instance_copies_with_the_instance_ports() {
    let sandbox = Sandbox::new();
    git(sandbox.dir.path(), &["init", "-q"]);
    let first = project(&sandbox, "first");
    let second = project(&sandbox, "second");
    sandbox.berth(&first, &["up"]).success();
    let up = sandbox.berth(&second, &["up", "--json"]).success().json();
    assert_eq!(up["port_offset"], 100);

    let written = std::fs::read_to_string(second.join(".env.local")).unwrap();
    let expected = DOTENV
        .replace("localhost:15600/app", "localhost:15700/app")
        .replace("127.0.0.1:15610", "127.0.0.1:15710")
        .replace("localhost:15620/api", "localhost:15720/api")
        .replace(
            "SECRET=keep-me\n",
            "SECRET=\"new value # with \\$ and \\\"quotes\\\"\"\n",
        )
        + "INSTANCE=second\nAPI_URL=http://127.0.0.1:15720\n";
    assert_eq!(
        written, expected,
        "comments, quoting, export and order are kept"
    );
    assert_eq!(
        std::fs::read_to_string(second.join(".env")).unwrap(),
        DOTENV,
        "the source is never edited"
    );
    let mode = std::fs::metadata(second.join(".env.local"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let exclude = std::fs::read_to_string(sandbox.dir.path().join(".git/info/exclude")).unwrap();
    assert!(
        exclude.lines().any(|line| line == "/second/.env.local"),
        "{exclude}"
    );

    // The api process loads the instance's copy.
    let pid = service_pids(&up)
        .into_iter()
        .find(|(name, _)| name == "api")
        .unwrap()
        .1;
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .replace('\0', "\n");
    assert!(
        environ.contains(
            "DATABASE_URL=postgres://app:p@ss:word@localhost:15700/app?sslmode=disable\n"
        ),
        "{environ}"
    );
    assert!(environ.contains("PEM=-----BEGIN KEY-----\nabc\n-----END KEY-----\n"));
    assert!(environ.contains("SECRET=new value # with $ and \"quotes\"\n"));

    // `berth env --format shell` is safe to eval and carries every port and URL.
    let script = sandbox
        .berth(&second, &["env", "--format", "shell"])
        .success()
        .stdout;
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{script}\necho \"$BERTH_URL_API $BERTH_PORT_DB $BERTH_INSTANCE\""
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "http://127.0.0.1:15720 15700 second"
    );

    // Regenerated on every up, even an idempotent one.
    std::fs::remove_file(second.join(".env.local")).unwrap();
    sandbox.berth(&second, &["up"]).success();
    assert_eq!(
        std::fs::read_to_string(second.join(".env.local")).unwrap(),
        written
    );

    // rm deletes the generated file and nothing else of the project.
    sandbox.berth(&second, &["rm", "--yes"]).success();
    assert!(!second.join(".env.local").exists());
    assert!(second.join(".env").exists() && second.join("berth.toml").exists());
    assert!(
        first.join(".env.local").exists(),
        "the other instance's copy stays"
    );
}

#[test]
fn a_missing_or_broken_source_is_a_located_error() {
    let sandbox = Sandbox::new();
    let dir = project(&sandbox, "broken");
    std::fs::write(dir.join(".env"), "GOOD=1\n# fine\nBAD LINE=2\n").unwrap();
    let run = sandbox.berth(&dir, &["up"]).code(2);
    assert!(run.stderr.contains("berth.toml:"), "{}", run.stderr);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
    std::fs::remove_file(dir.join(".env")).unwrap();
    let run = sandbox.berth(&dir, &["up"]).code(2);
    assert!(
        run.stderr.contains("cannot read env file"),
        "{}",
        run.stderr
    );
    assert!(!dir.join(".env.local").exists());
}
