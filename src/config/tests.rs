//! Loading, layering, validation and the effective view of the configuration.

use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_with(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut tmp = None;
    let file = file.map(|text| {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let p = f.path().to_path_buf();
        tmp = Some(f);
        p
    });
    load(&Sources {
        file,
        env: env(vars),
    })
    .map(|l| l.config)
}

#[test]
fn defaults_load_and_match_documented_values() {
    let c = load_with(None, &[]).unwrap();
    assert_eq!(c.server.bind, "127.0.0.1:8080");
    // `./var`, resolved against the working directory once, at load.
    assert_eq!(c.state_dir, std::env::current_dir().unwrap().join("var"));
    assert!(c.state_dir.is_absolute());
    assert!(c.database.url.is_none());
    assert_eq!(c.supervisor.max_restarts, 5);
    assert_eq!(c.supervisor.restart_window, Duration::from_secs(60));
    assert_eq!(c.supervisor.backoff_initial, Duration::from_millis(100));
    assert_eq!(c.supervisor.backoff_max, Duration::from_secs(5));
    assert!(c.flags.anti_detection && c.flags.quota_enforcement);
    assert!(!c.debug.fault_injection);
    assert_eq!(c.server.body_limit, 64 * 1024);
}

#[test]
fn layering_file_then_env_then_aliases() {
    let file = "[server]\nbind = \"127.0.0.1:9000\"\nworkers = 3\n[flags]\nnotifications = false\n";
    let c = load_with(
        Some(file),
        &[
            ("OVERSEER__SERVER__BIND", "127.0.0.1:9100"),
            ("OVERSEER__FLAGS__ZOMBIE_DETECTION", "false"),
            ("ANTI_DETECTION_ENABLED", "0"),
            ("DATABASE_URL", "postgresql+psycopg2://u:pw@h/db"),
        ],
    )
    .unwrap();
    assert_eq!(c.server.bind, "127.0.0.1:9100", "env beats file");
    assert_eq!(c.server.workers, 3, "file beats defaults");
    assert!(!c.flags.notifications);
    assert!(!c.flags.zombie_detection);
    assert!(!c.flags.anti_detection);
    assert_eq!(c.database_url().unwrap().expose(), "postgresql://u:pw@h/db");
}

#[test]
fn canonical_env_key_beats_alias() {
    let c = load_with(None, &[("DATABASE_URL", "postgres://a@h/one")]).unwrap();
    assert_eq!(c.database_url().unwrap().database(), "one");
    let c = load_with(
        None,
        &[
            ("DATABASE_URL", "postgres://a@h/one"),
            ("OVERSEER__DATABASE__URL", "postgres://a@h/two"),
            ("ANTI_DETECTION_ENABLED", "false"),
            ("OVERSEER__FLAGS__ANTI_DETECTION", "true"),
        ],
    )
    .unwrap();
    assert_eq!(c.database_url().unwrap().database(), "two");
    assert!(c.flags.anti_detection);
}

fn key_error(file: Option<&str>, vars: &[(&str, &str)]) -> (String, Origin, String) {
    match load_with(file, vars) {
        Err(ConfigError::Key {
            key,
            origin,
            expected,
        }) => (key, origin, expected),
        other => panic!("expected a key error, got {other:?}"),
    }
}

#[test]
fn trace_settings_are_checked() {
    let (key, _, expected) = key_error(Some("[traces]\nendpoint = \"collector:4318\""), &[]);
    assert_eq!(key, "traces.endpoint");
    assert!(expected.contains("http://"), "{expected}");
    let (key, origin, _) = key_error(None, &[("OVERSEER__TRACES__SAMPLE_RATIO", "1.5")]);
    assert_eq!(key, "traces.sample_ratio");
    assert_eq!(origin, Origin::Env("OVERSEER__TRACES__SAMPLE_RATIO".into()));
    let (key, _, _) = key_error(Some("[traces]\nexport_interval = \"0s\""), &[]);
    assert_eq!(key, "traces.export_interval");
    assert!(
        !load_with(None, &[]).unwrap().traces.enabled,
        "off by default"
    );
}

#[test]
fn env_errors_name_key_variable_and_expectation() {
    let (key, origin, expected) = key_error(None, &[("OVERSEER__SERVER__BIND", "nowhere")]);
    assert_eq!(key, "server.bind");
    assert_eq!(origin, Origin::Env("OVERSEER__SERVER__BIND".into()));
    assert!(expected.contains("IP address and port"), "{expected}");

    let (key, origin, expected) = key_error(None, &[("OVERSEER__DATABASE__POOL_SIZE", "lots")]);
    assert_eq!(key, "database.pool_size");
    assert_eq!(origin, Origin::Env("OVERSEER__DATABASE__POOL_SIZE".into()));
    assert!(
        expected.contains("u32") || expected.contains("integer"),
        "{expected}"
    );

    let (key, origin, _) = key_error(None, &[("DATABASE_URL", "sqlite:///x.db")]);
    assert_eq!(key, "database.url");
    assert_eq!(origin, Origin::Env("DATABASE_URL".into()));

    let (key, origin, _) = key_error(None, &[("ANTI_DETECTION_ENABLED", "maybe")]);
    assert_eq!(key, "flags.anti_detection");
    assert_eq!(origin, Origin::Env("ANTI_DETECTION_ENABLED".into()));

    let (key, _, expected) = key_error(None, &[("OVERSEER__SUPERVISOR__BACKOFF_MAX", "soon")]);
    assert_eq!(key, "supervisor.backoff_max");
    assert!(expected.contains("5s"), "{expected}");
}

#[test]
fn file_errors_name_key_and_file() {
    let (key, origin, expected) = key_error(Some("[server]\nbnid = \"x\"\n"), &[]);
    assert_eq!(key, "server.bnid");
    assert!(matches!(origin, Origin::File(_)), "{origin:?}");
    assert!(expected.contains("unknown key"), "{expected}");

    let (key, origin, _) = key_error(Some("[database]\npool_size = 0\n"), &[]);
    assert_eq!(key, "database.pool_size");
    assert!(matches!(origin, Origin::File(_)));

    let (key, _, expected) = key_error(
        Some("[[auth.tokens]]\nname = \"x\"\nrole = \"root\"\nsha256 = \"00\"\n"),
        &[],
    );
    assert!(key.starts_with("auth.tokens"), "{key}");
    assert!(expected.contains("viewer"), "{expected}");

    let (key, _, expected) = key_error(
        Some("[[auth.tokens]]\nname = \"x\"\nrole = \"admin\"\nsha256 = \"00\"\n"),
        &[],
    );
    assert_eq!(key, "auth.tokens.0.sha256");
    assert!(expected.contains("64 hex"), "{expected}");

    let (key, _, _) = key_error(Some("[log]\nformat = \"xml\"\n"), &[]);
    assert_eq!(key, "log.format");

    match load_with(Some("this is = = not toml"), &[]) {
        Err(ConfigError::File { message, .. }) => assert!(message.contains("TOML")),
        other => panic!("{other:?}"),
    }
    match load(&Sources {
        file: Some("/nonexistent/overseer.toml".into()),
        env: vec![],
    }) {
        Err(ConfigError::File { path, .. }) => {
            assert_eq!(path, PathBuf::from("/nonexistent/overseer.toml"))
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("loaded a missing file"),
    }
}

#[test]
fn notify_channels_are_validated_and_their_secrets_never_shown() {
    let ok = "[[notify.channels]]\nname = \"hook\"\ntype = \"webhook\"\n\
              url = \"https://hooks.example.org/services/T0/SECRETPATH\"\nsecret = \"hmac-key-x\"\n\
              [[notify.channels]]\nname = \"mail\"\ntype = \"email\"\nhost = \"smtp.example.org\"\n\
              username = \"u\"\npassword = \"smtp-pass-y\"\nfrom = \"o <o@example.org>\"\nto = [\"me@example.org\"]\n";
    let c = load_with(Some(ok), &[]).unwrap();
    let shown = c.effective_toml();
    for secret in ["SECRETPATH", "hmac-key-x", "smtp-pass-y"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("https://hooks.example.org/…"), "{shown}");
    assert!(!format!("{c:?}").contains("smtp-pass-y"));

    let (key, _, _) = key_error(
        Some("[[notify.channels]]\nname = \"h\"\ntype = \"webhook\"\n"),
        &[],
    );
    assert_eq!(key, "notify.channels.0.url");
    let (key, _, _) = key_error(
        Some("[[notify.channels]]\nname = \"m\"\ntype = \"email\"\nhost = \"x\"\nfrom = \"o@example.org\"\nto = [\"not an address\"]\n"),
        &[],
    );
    assert_eq!(key, "notify.channels.0.to.0");
    let (key, _, _) = key_error(
        Some("[[notify.channels]]\nname = \"x\"\ntype = \"pager\"\n"),
        &[],
    );
    assert_eq!(key, "notify.channels.0.type");
    let (key, _, _) = key_error(
        Some(
            "[[notify.routes]]\nevents = [\"*\"]\nmin_severity = \"loud\"\nchannels = [\"log\"]\n",
        ),
        &[],
    );
    assert_eq!(key, "notify.routes.0.min_severity");
}

#[test]
fn effective_view_redacts_secrets() {
    let c = load_with(
        Some("[[auth.tokens]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"aaaaaaaabbbbbbbbccccccccddddddddeeeeeeeeffffffff0000000011111111\"\n"),
        &[("DATABASE_URL", "postgres://app:topsecret@db/prod")],
    )
    .unwrap();
    let shown = c.effective_toml();
    assert!(!shown.contains("topsecret"), "{shown}");
    assert!(shown.contains("postgresql://app:***@db/prod"), "{shown}");
    assert!(!shown.contains("ffffffff0000000011111111"), "{shown}");
    assert!(!format!("{c:?}").contains("topsecret"));
}
