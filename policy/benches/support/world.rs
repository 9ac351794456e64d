//! The synthetic organisation and the events its people cause.

use chrono::{DateTime, TimeZone, Utc};
use policy::Settings;
use std::fmt::Write as _;

pub const ENVS: [&str; 4] = ["prod", "stage", "dev", "test"];
/// Services and the login their role gives besides `root`.
pub const SERVICES: [(&str, &str); 10] = [
    ("db", "postgres"),
    ("web", "www"),
    ("api", "app"),
    ("cache", "redis"),
    ("queue", "rabbit"),
    ("search", "elastic"),
    ("auth", "auth"),
    ("batch", "batch"),
    ("ml", "ml"),
    ("edge", "edge"),
];
pub const NODES: usize = 5;
pub const USERS: usize = 1_000;
/// Every login any role gives, for random (user, login, host) queries.
pub const LOGINS: [&str; 13] = [
    "root", "postgres", "www", "app", "redis", "rabbit", "elastic", "auth", "batch", "ml", "edge",
    "ops", "readonly",
];

/// The benchmarks' fixed "now": 2026-11-27T12:00:00Z.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

/// One access role, as the generators need it.
#[derive(Debug, Clone)]
pub struct AccessRole {
    pub name: String,
    /// The one host pattern the role covers.
    pub hosts: String,
    /// Concrete hosts inside that pattern, for request patterns and queries.
    pub members: Vec<String>,
    pub logins: Vec<String>,
}

/// The synthetic organisation: the config text, its validated settings, and the names in it.
pub struct World {
    pub toml: String,
    pub settings: Settings,
    pub users: Vec<String>,
    pub hosts: Vec<String>,
    pub roles: Vec<AccessRole>,
    /// Per user: indexes into `roles` of the roles they may request.
    pub can_request: Vec<Vec<usize>>,
    /// Users holding the `approver` role.
    pub approvers: Vec<String>,
}

impl World {
    pub fn new() -> World {
        let mut rng = Rng::new(0x1a7c);
        let mut hosts = Vec::new();
        for env in ENVS {
            for (service, _) in SERVICES {
                for n in 1..=NODES {
                    hosts.push(format!("{env}-{service}-{n:02}"));
                }
            }
        }
        let members = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
            hosts.iter().filter(|h| pred(h)).cloned().collect()
        };

        let mut roles = Vec::new();
        for env in ENVS {
            for (service, login) in SERVICES {
                let prefix = format!("{env}-{service}-");
                roles.push(AccessRole {
                    name: format!("{env}-{service}"),
                    hosts: format!("{prefix}*"),
                    members: members(&|h| h.starts_with(&prefix)),
                    logins: vec!["root".into(), login.into()],
                });
            }
        }
        for env in ENVS {
            let prefix = format!("{env}-");
            roles.push(AccessRole {
                name: format!("{env}-ops"),
                hosts: format!("{prefix}*"),
                members: members(&|h| h.starts_with(&prefix)),
                logins: vec!["root".into(), "ops".into()],
            });
        }
        for (service, _) in &SERVICES[..4] {
            let infix = format!("-{service}-");
            roles.push(AccessRole {
                name: format!("{service}-readonly"),
                hosts: format!("*{infix}*"),
                members: members(&|h| h.contains(&infix)),
                logins: vec!["readonly".into()],
            });
        }
        assert_eq!(roles.len() + 2, 50, "50 roles with approver and admin");

        let requestable: Vec<usize> = roles
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.name.starts_with("dev-"))
            .map(|(i, _)| i)
            .collect();
        let users: Vec<String> = (0..USERS).map(|i| format!("u{i:04}")).collect();
        let mut can_request = Vec::with_capacity(USERS);
        let mut approvers = Vec::new();
        let mut toml = String::from(
            "[jit]\ndefault_duration = \"1h\"\nmax_duration = \"8h\"\nmin_duration = \"1m\"\n\
             approval_timeout = \"24h\"\nrequire_reason = true\n\n",
        );
        for (i, user) in users.iter().enumerate() {
            let mut mine = Vec::new();
            while mine.len() < 6 {
                let r = requestable[rng.below(requestable.len())];
                if !mine.contains(&r) {
                    mine.push(r);
                }
            }
            let mut standing = vec![format!("dev-{}", SERVICES[i % SERVICES.len()].0)];
            if i % 100 == 0 {
                standing.push("approver".into());
                approvers.push(user.clone());
            }
            if i == 0 {
                standing.push("admin".into());
            }
            let _ = write!(
                toml,
                "[[users]]\nname = \"{user}\"\nkeys = [\"{}\"]\nroles = {}\ncan_request = {}\n\n",
                ed25519_key_line(i as u64, &format!("{user}@laptop")),
                toml_list(standing.iter().map(String::as_str)),
                toml_list(mine.iter().map(|&r| roles[r].name.as_str())),
            );
            can_request.push(mine);
        }
        for role in &roles {
            let auto = role.name.starts_with("dev-") || role.name.starts_with("test-");
            let _ = write!(
                toml,
                "[[roles]]\nname = \"{}\"\nlogins = {}\nhosts = [\"{}\"]\n\
                 approvers = [\"approver\"]\nauto_approve = {auto}\n\n",
                role.name,
                toml_list(role.logins.iter().map(String::as_str)),
                role.hosts,
            );
        }
        toml.push_str(
            "[[roles]]\nname = \"approver\"\n\n[[roles]]\nname = \"admin\"\nadmin = true\n\n",
        );
        for (i, host) in hosts.iter().enumerate() {
            let _ = write!(
                toml,
                "[[hosts]]\nname = \"{host}\"\naddress = \"10.0.{}.{}:22\"\n\
                 host_keys = [\"{}\"]\n\n",
                i / 250,
                i % 250 + 1,
                ed25519_key_line(1_000_000 + i as u64, ""),
            );
        }
        let settings = match Settings::from_toml(&toml) {
            Ok(s) => s,
            Err(e) => panic!("the benchmark config must validate: {e}"),
        };
        World {
            toml,
            settings,
            users,
            hosts,
            roles,
            can_request,
            approvers,
        }
    }
}

fn toml_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = items.map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A syntactically valid OpenSSH ed25519 public key line: `ssh-ed25519 ` + base64 of
/// (u32 11, "ssh-ed25519", u32 32, 32 key bytes), the key bytes derived from `seed`.
pub fn ed25519_key_line(seed: u64, comment: &str) -> String {
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    let mut rng = Rng::new(seed);
    for _ in 0..4 {
        blob.extend_from_slice(&rng.next().to_le_bytes());
    }
    let line = format!("ssh-ed25519 {} {comment}", base64(&blob));
    line.trim_end().to_string()
}

/// Standard base64 with padding (the benchmarks need it for key lines only).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SplitMix64: seeded, so every run builds the same world and asks the same questions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (the modulo bias is irrelevant at these sizes).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// How long requested grants last, as people ask for them.
const DURATIONS_MIN: [i64; 6] = [30, 60, 60, 120, 240, 480];

/// A `Requested` event as `user` would cause it at `at`: one of their requestable roles, on the
/// role's pattern (half the time), one host of it, or a character-class glob.
pub fn request_event(
    world: &World,
    rng: &mut Rng,
    id: u64,
    at: DateTime<Utc>,
) -> (String, policy::event::Requested) {
    let user = rng.below(world.users.len());
    let mine = &world.can_request[user];
    let role = &world.roles[mine[rng.below(mine.len())]];
    let pick = rng.below(100);
    let hosts = if pick < 50 {
        role.hosts.clone()
    } else if pick < 85 {
        role.members[rng.below(role.members.len())].clone()
    } else {
        // `prod-db-0[1-3]`-like: the first node's name with its last digit made a class.
        let first = &role.members[0];
        format!("{}[1-3]", &first[..first.len() - 1])
    };
    let duration = chrono::Duration::minutes(DURATIONS_MIN[rng.below(DURATIONS_MIN.len())]);
    let ticket = rng.percent(30).then(|| {
        format!(
            "https://tickets.example.com/browse/OPS-{}",
            10_000 + id % 90_000
        )
    });
    let requested = policy::event::Requested {
        id: policy::GrantId(id),
        user: world.users[user].clone(),
        role: role.name.clone(),
        hosts: policy::HostPattern::parse(&hosts).expect("generated patterns are valid"),
        reason: Some(format!(
            "INC-{} investigate elevated error rate",
            4_000 + id % 5_000
        )),
        ticket,
        duration,
        capped_from: None,
        start: None,
        approval_deadline: at + chrono::Duration::hours(24),
        break_glass: false,
        extends: None,
    };
    (world.users[user].clone(), requested)
}

/// The `Approved` event for `request`, decided at `at` by an approver (or `latch` for the
/// auto-approved roles); one in ten approvals narrows the hosts to one.
pub fn approve_event(
    world: &World,
    rng: &mut Rng,
    request: &policy::event::Requested,
    at: DateTime<Utc>,
) -> (String, policy::event::Approved) {
    let auto = request.role.starts_with("test-");
    let by = if auto {
        "latch".to_string()
    } else {
        let mut by = &world.approvers[rng.below(world.approvers.len())];
        if *by == request.user {
            by = &world.approvers
                [(rng.below(world.approvers.len() - 1) + 1) % world.approvers.len()];
        }
        by.clone()
    };
    let narrowed = (!auto && rng.percent(10) && !request.hosts.is_literal())
        .then(|| {
            world
                .hosts
                .iter()
                .find(|h| request.hosts.matches(h))
                .map(|h| policy::HostPattern::parse(h).expect("host names are literal patterns"))
        })
        .flatten();
    let approved = policy::event::Approved {
        id: request.id,
        by: by.clone(),
        hosts: narrowed,
        duration: request.duration,
        reason: (!auto && rng.percent(20)).then(|| "ok, keep it short".to_string()),
        starts_at: at,
        expires_at: at + request.duration,
    };
    (by, approved)
}
