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
    let expected = "# Written by berth for instance `second` from `.env`: rewritten by `berth up`, deleted by `berth rm`; edit the source instead.\n".to_string()
        + &DOTENV
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
        "berth's header line first; comments, quoting, export and order kept"
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

/// A project whose one service takes an auto port, with `[[env_files]]` `entry` appended.
fn with_env_file(sandbox: &Sandbox, name: &str, entry: &str) -> std::path::PathBuf {
    let config = format!(
        "[services.web]\ncommand = \"{} serve --port {{{{ port.web }}}}\"\nport = \"auto\"\n\n[[env_files]]\n{entry}",
        helper()
    );
    sandbox.project(name, &config)
}

#[test]
fn a_target_is_never_a_source_the_config_a_compose_file_or_a_users_file() {
    let sandbox = Sandbox::new();
    let secrets = "SECRET=mine\n";
    // (entry, files besides berth.toml, the file that must stay as it is, error).
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            "source = \".env.example\"\ntarget = \".env\"\n",
            &[(".env.example", "A=1\n"), (".env", secrets)],
            ".env",
            "berth.toml:7:10: env file target `.env` already exists and berth did not write it",
        ),
        (
            "source = \".env\"\ntarget = \".env\"\n",
            &[(".env", secrets)],
            ".env",
            "berth.toml:7:10: env file target `.env` is the source of an env file (`.env`)",
        ),
        (
            "source = \".env\"\ntarget = \"berth.toml\"\n",
            &[(".env", secrets)],
            "berth.toml",
            "berth.toml:7:10: env file target `berth.toml` is the configuration file",
        ),
        (
            "source = \".env\"\ntarget = \"../outside.env\"\n",
            &[(".env", secrets)],
            ".env",
            "berth.toml:7:10: env file target `../outside.env` is not a file inside the project",
        ),
        (
            // A copy berth wrote elsewhere, committed: berth's header but no record.
            "source = \".env\"\ntarget = \".env.local\"\n",
            &[
                (".env", secrets),
                (
                    ".env.local",
                    "# Written by berth for instance `x`\nSECRET=theirs\n",
                ),
            ],
            ".env.local",
            "env file target `.env.local` already exists, and this berth (its BERTH_HOME) has no record of writing it",
        ),
        (
            // Templated: checked once rendered, still located.
            "source = \".env\"\ntarget = \".env.{{ instance.name }}\"\n",
            &[(".env", secrets), (".env.templated", secrets)],
            ".env.templated",
            "berth.toml:7:10: env file target `.env.templated` already exists and berth did not write it",
        ),
    ];
    for (index, (entry, files, kept, expected)) in cases.iter().enumerate() {
        let name = if index == 5 {
            "templated".to_string()
        } else {
            format!("case{index}")
        };
        let root = with_env_file(&sandbox, &name, entry);
        for (file, text) in *files {
            std::fs::write(root.join(file), text).unwrap();
        }
        let before = std::fs::read(root.join(kept)).unwrap();
        let run = sandbox.berth(&root, &["up"]).code(2);
        assert!(run.shows_config_error(expected), "{entry}\n{}", run.stderr);
        assert!(run.stderr.contains("\nhint: "), "{}", run.stderr);
        assert_eq!(std::fs::read(root.join(kept)).unwrap(), before, "{kept}");
        // A refused up reserves nothing (the ledger may not even exist yet).
        let ledger =
            std::fs::read_to_string(sandbox.home().join("ledger.json")).unwrap_or_default();
        assert!(!ledger.contains(&format!("\"{name}\"")), "{ledger}");
    }

    // A Compose file (resolved by a stand-in Compose tool that prints a fixed project).
    let mut sandbox = sandbox;
    let tool = sandbox.dir.path().join("fake-compose");
    std::fs::write(
        &tool,
        "#!/bin/sh\nprintf 'services:\\n  cache:\\n    image: x\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    sandbox.compose = Some(tool.display().to_string());
    let root = with_env_file(
        &sandbox,
        "compose",
        "source = \".env\"\ntarget = \"compose.yml\"\n",
    );
    std::fs::write(root.join(".env"), secrets).unwrap();
    std::fs::write(
        root.join("compose.yml"),
        "services:\n  cache:\n    image: x\n",
    )
    .unwrap();
    let run = sandbox.berth(&root, &["up"]).code(2);
    assert!(
        run.stderr
            .contains("env file target `compose.yml` is a Compose file (`compose.yml`)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(root.join("compose.yml")).unwrap(),
        "services:\n  cache:\n    image: x\n"
    );
}

#[test]
fn targets_are_reached_without_following_symlinks() {
    let sandbox = Sandbox::new();
    let elsewhere = sandbox.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let victim = elsewhere.join("victim.env");
    std::fs::write(&victim, "KEEP=1\n").unwrap();

    let root = with_env_file(
        &sandbox,
        "under-link",
        "source = \".env\"\ntarget = \"config/.env.local\"\n",
    );
    std::fs::write(root.join(".env"), "A=1\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("config")).unwrap();
    let run = sandbox.berth(&root, &["up"]).code(2);
    assert!(
        run.shows_config_error(
            "berth.toml:7:10: env file target `config/.env.local` is under the symlink `config`"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 1);

    // Templated, so found only once rendered: still refused, nothing written through it.
    let root = with_env_file(
        &sandbox,
        "linked-name",
        "source = \".env\"\ntarget = \".env.{{ instance.name }}\"\n",
    );
    std::fs::write(root.join(".env"), "A=1\n").unwrap();
    std::os::unix::fs::symlink(&victim, root.join(".env.linked-name")).unwrap();
    let run = sandbox.berth(&root, &["up"]).code(2);
    assert!(
        run.stderr
            .contains("env file target `.env.linked-name` is a symlink"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "KEEP=1\n");
}

#[test]
fn up_rewrites_and_rm_deletes_only_the_files_berth_wrote() {
    let sandbox = Sandbox::new();
    let root = with_env_file(
        &sandbox,
        "owned",
        "source = \".env\"\ntarget = \"generated/.env.local\"\n",
    );
    std::fs::write(root.join(".env"), "A=1\n").unwrap();
    std::fs::write(root.join("secret.txt"), "mine\n").unwrap();
    let target = root.join("generated/.env.local");
    sandbox.berth(&root, &["up"]).success();
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(
        written.starts_with("# Written by berth for instance `owned` from `.env`"),
        "{written}"
    );
    let ledger = sandbox.ledger();
    assert_eq!(
        ledger["instances"][0]["env_files"][0],
        target.display().to_string(),
        "the record is kept under BERTH_HOME"
    );

    // A re-run rewrites berth's own file.
    std::fs::write(&target, written.clone() + "EDITED=1\n").unwrap();
    sandbox.berth(&root, &["up"]).success();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), written);

    // The work tree's `.berth/` is no authority: a file it lists is not deleted.
    let state = root.join(".berth/owned/instance.json");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    file["env_files"] = serde_json::json!([root.join("secret.txt"), target]);
    std::fs::write(&state, serde_json::to_string(&file).unwrap()).unwrap();

    // A file the user put in its place is neither rewritten nor deleted.
    sandbox.berth(&root, &["down"]).success();
    std::fs::write(&target, "MINE=1\n").unwrap();
    let run = sandbox.berth(&root, &["up"]).code(2);
    assert!(
        run.stderr.contains(
            "env file target `generated/.env.local` already exists and berth did not write it"
        ),
        "{}",
        run.stderr
    );
    let run = sandbox.berth(&root, &["rm", "--yes"]).success();
    assert!(run.stderr.contains("kept"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "MINE=1\n");
    assert_eq!(
        std::fs::read_to_string(root.join("secret.txt")).unwrap(),
        "mine\n"
    );

    // And berth's own copy is deleted by rm.
    std::fs::remove_file(&target).unwrap();
    sandbox.berth(&root, &["up"]).success();
    assert!(target.is_file());
    let run = sandbox.berth(&root, &["rm", "--yes"]).success();
    assert!(run.stderr.contains("1 env file"), "{}", run.stderr);
    assert!(!target.exists());
    assert!(root.join(".env").is_file() && root.join("secret.txt").is_file());
}
