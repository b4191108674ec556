//! The demo set-up of `signoff serve --dev`: rules with a few levels and one
//! principal per role, whose (well-known, loopback-only) tokens the server
//! prints at start.
//!
//! The same rules and principals are in `host/demo/rules.json` and
//! `host/demo/principals.json`, to start from when writing real ones.

use signoff_core::{Principal, Rules, Violation};

use super::auth::Principals;

/// The demo rules: documentation changes are auto-approved; others need one
/// engineer's review; IAM changes in `prod`, and any change with
/// `riskScore >= 70`, need a security review and then a security lead's
/// sign-off; each requester may create 20 requests at once, then 30 a minute.
pub const RULES_JSON: &str = include_str!("../../demo/rules.json");

/// The demo principals: `(id, roles, token)`.
pub const PRINCIPALS: [(&str, &[&str], &str); 5] = [
    ("alice", &["engineer"], "dev-alice"),
    ("bob", &["engineer"], "dev-bob"),
    ("carol", &["security"], "dev-carol"),
    ("dave", &["security-lead"], "dev-dave"),
    ("admin", &["admin"], "dev-admin"),
];

/// The demo rules, validated.
pub fn rules() -> Result<Rules, Vec<Violation>> {
    Rules::parse_str(RULES_JSON)
}

/// The demo principals.
pub fn principals() -> Principals {
    Principals::from_tokens(
        PRINCIPALS
            .iter()
            .map(|(id, roles, token)| (Principal::new(*id, roles), *token)),
    )
}

/// The lines printed at start in demo mode: who is who, with their tokens.
pub fn banner(address: &str) -> String {
    let mut text = format!(
        "signoff is running in demo mode (--dev) on http://{address}\n\
         editor: http://{address}/   demo principals (tokens for loopback use only):\n"
    );
    for (id, roles, token) in PRINCIPALS {
        text.push_str(&format!(
            "  {id:<6} roles {:<18} Authorization: Bearer {token}\n",
            roles.join(",")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_rules_are_valid_and_graded() {
        let rules = rules().unwrap();
        let names: Vec<&str> = rules
            .levels
            .iter()
            .map(|level| level.name.as_str())
            .collect();
        assert_eq!(names, ["auto", "peer", "security"]);
        assert!(rules.rate_limit.is_some());
    }

    #[test]
    fn the_principals_file_matches_the_tokens() {
        let file = Principals::parse_str(include_str!("../../demo/principals.json")).unwrap();
        assert_eq!(file.len(), PRINCIPALS.len());
        let demo = principals();
        for (id, roles, token) in PRINCIPALS {
            let principal = file.find(token).unwrap();
            assert_eq!(principal, &Principal::new(id, roles));
            assert_eq!(demo.find(token), Some(principal));
        }
    }
}
