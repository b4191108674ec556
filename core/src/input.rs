//! Untyped inputs of the actions and of listing, parsed with every problem
//! reported, the same way in every build.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::change::{LONG_TEXT, is_policy_type};
use crate::error::Error;
use crate::request::{Action, Principal, ReviewOutcome, Status};
use crate::validation::{
    CharPolicy, ObjectReader, TextRule, Violation, ViolationCode, check_text, expect_integer,
};

/// Page size bounds of listing.
pub mod limits {
    /// The page size when none is given.
    pub const DEFAULT_PAGE_SIZE: u32 = 50;
    /// The largest page.
    pub const MAX_PAGE_SIZE: u32 = 500;
    /// Idempotency keys: 1..=255 visible ASCII characters.
    pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
    /// A listing's search text `q`: 1..=200 characters after trimming, as
    /// long as the longest title it could match.
    pub const MAX_SEARCH_CHARS: usize = 200;
}

fn invalid(what: &str, details: Vec<Violation>) -> Error {
    Error::invalid(format!("the {what} is invalid"), details)
}

/// Reads an optional body object (`null` or absent means `{}`).
fn body<'a>(input: Option<&'a Value>, out: &mut Vec<Violation>) -> Option<ObjectReader<'a>> {
    static EMPTY_OBJECT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let value = match input {
        None | Some(Value::Null) => {
            EMPTY_OBJECT.get_or_init(|| Value::Object(serde_json::Map::new()))
        }
        Some(value) => value,
    };
    ObjectReader::new("", value, out)
}

fn text_field(
    reader: &mut ObjectReader<'_>,
    field: &'static str,
    required: bool,
    out: &mut Vec<Violation>,
) -> Option<String> {
    let text = if required {
        reader.required_str(field, out)
    } else {
        reader.optional_str(field, out)
    }?;
    Some(check_text(field, text, LONG_TEXT, out))
}

fn parse_text_body(
    input: Option<&Value>,
    field: &'static str,
    required: bool,
    what: &str,
) -> Result<Option<String>, Error> {
    let mut out = Vec::new();
    let mut text = None;
    if let Some(mut reader) = body(input, &mut out) {
        text = text_field(&mut reader, field, required, &mut out);
        reader.finish(&mut out);
    }
    if out.is_empty() {
        Ok(text)
    } else {
        Err(invalid(what, out))
    }
}

/// Parses an approve body `{ comment? }`.
pub fn parse_approve(input: Option<&Value>) -> Result<Option<String>, Error> {
    parse_text_body(input, "comment", false, "approval")
}

/// Parses a reject body `{ reason }`.
pub fn parse_reject(input: Option<&Value>) -> Result<String, Error> {
    parse_text_body(input, "reason", true, "rejection")?.ok_or_else(|| {
        invalid(
            "rejection",
            vec![Violation::new(
                "reason",
                ViolationCode::Required,
                "is required",
            )],
        )
    })
}

/// Parses a comment body `{ text }`.
pub fn parse_comment(input: Option<&Value>) -> Result<String, Error> {
    parse_text_body(input, "text", true, "comment")?.ok_or_else(|| {
        invalid(
            "comment",
            vec![Violation::new(
                "text",
                ViolationCode::Required,
                "is required",
            )],
        )
    })
}

/// Parses a review body `{ outcome, comment? }`.
pub fn parse_review(input: Option<&Value>) -> Result<(ReviewOutcome, Option<String>), Error> {
    let mut out = Vec::new();
    let mut outcome = None;
    let mut comment = None;
    if let Some(mut reader) = body(input, &mut out) {
        outcome = reader.required("outcome", &mut out).and_then(|value| {
            crate::change::parse_choice(
                "outcome",
                value,
                &ReviewOutcome::ALL,
                ReviewOutcome::as_str,
                &mut out,
            )
        });
        comment = text_field(&mut reader, "comment", false, &mut out);
        reader.finish(&mut out);
    }
    match outcome {
        Some(outcome) if out.is_empty() => Ok((outcome, comment)),
        _ => Err(invalid("review", out)),
    }
}

/// Parses a cancel body: nothing, or an empty object.
pub fn parse_cancel(input: Option<&Value>) -> Result<(), Error> {
    let mut out = Vec::new();
    if let Some(reader) = body(input, &mut out) {
        // A cancel has no fields: anything sent is reported, not dropped.
        reader.finish(&mut out);
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(invalid("cancellation", out))
    }
}

/// The body of an approval; it may be left out.
// What `parse_approve` reads; its doc comment is the schema's description.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalBody {
    /// A note kept with the approval: 1..=4000 characters after trimming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The body of a rejection.
// What `parse_reject` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectionBody {
    /// Why: 1..=4000 characters after trimming.
    pub reason: String,
}

/// The body of a comment.
// What `parse_comment` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommentBody {
    /// The comment: 1..=4000 characters after trimming.
    pub text: String,
}

/// The body of a review: how the after-the-fact review of an emergency
/// ends.
// What `parse_review` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewBody {
    /// `ratified` or `flagged`.
    pub outcome: ReviewOutcome,
    /// A note: 1..=4000 characters after trimming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The body of a cancellation: nothing, or an empty object.
// What `parse_cancel` reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancellationBody {}

/// The actions a caller may ask for on a stored request, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionName {
    /// `approve`, body `{ comment? }`.
    Approve,
    /// `reject`, body `{ reason }`.
    Reject,
    /// `cancel`, no body (or `{}`).
    Cancel,
    /// `comment`, body `{ text }`.
    Comment,
    /// `review`, body `{ outcome, comment? }`.
    Review,
}

/// Parses the body of the action `name` into the action the manager applies,
/// so that every binding turns a named action and its body into the same
/// [`Action`] (see `Manager::act`).
pub fn parse_action(name: ActionName, body: Option<&Value>) -> Result<Action, Error> {
    Ok(match name {
        ActionName::Approve => Action::Approve {
            comment: parse_approve(body)?,
        },
        ActionName::Reject => Action::Reject {
            reason: parse_reject(body)?,
        },
        ActionName::Cancel => {
            parse_cancel(body)?;
            Action::Cancel
        }
        ActionName::Comment => Action::Comment {
            text: parse_comment(body)?,
        },
        ActionName::Review => {
            let (outcome, comment) = parse_review(body)?;
            Action::Review { outcome, comment }
        }
    })
}

/// Checks an idempotency key: 1..=255 visible ASCII characters.
pub fn parse_idempotency_key(key: &str) -> Result<(), Error> {
    let visible = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !key.is_empty() && key.len() <= limits::MAX_IDEMPOTENCY_KEY_LEN && visible {
        Ok(())
    } else {
        Err(invalid(
            "idempotency key",
            vec![Violation::new(
                "idempotencyKey",
                ViolationCode::InvalidFormat,
                "must be 1 to 255 visible ASCII characters",
            )],
        ))
    }
}

/// A listing query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Which status to list; pending by default.
    pub status: Status,
    /// Only this policy type, when given.
    pub policy_type: Option<String>,
    /// Page size, 1..=500.
    pub limit: u32,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// How much of each item to give; not a filter.
    pub view: crate::listing::View,
    /// Only the pending requests this principal may approve now.
    pub actionable_by: Option<Principal>,
    /// Only the emergency requests whose review is open (or overdue).
    pub emergency_review: Option<ReviewFilter>,
    /// Only the requests whose title or `policyId` holds this text,
    /// ASCII letters compared without case, other characters exactly (`q`
    /// on the wire; trimmed, 1..=200 characters). Kept with its ASCII
    /// letters lowercased, as it is compared.
    pub search: Option<String>,
    /// On whose behalf the listing is read: under `visibility: involved`,
    /// only what this principal may see. Not a filter of the cursor.
    pub viewer: Option<Principal>,
}

/// Which emergency requests a listing gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReviewFilter {
    /// Their after-the-fact review is open.
    Open,
    /// It is open past its `dueAt`.
    Overdue,
}

impl ReviewFilter {
    /// Every filter.
    pub const ALL: [Self; 2] = [Self::Open, Self::Overdue];

    /// The wire name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        crate::validation::wire_name(&self)
    }
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            status: Status::Pending,
            policy_type: None,
            limit: limits::DEFAULT_PAGE_SIZE,
            cursor: None,
            view: crate::listing::View::Full,
            actionable_by: None,
            emergency_review: None,
            search: None,
            viewer: None,
        }
    }
}

impl ListQuery {
    /// The parameters of a URL's query string as the object that
    /// [`ListQuery::parse`] reads: a parameter given twice is `duplicate`, and
    /// an empty value (`?status=`) means the parameter is absent. Which
    /// parameters exist is for `parse` to say.
    ///
    /// `actionableBy=me` names the caller: it becomes the caller's
    /// principal, which is what [`ListQuery::parse`] reads; any other value
    /// is left for `parse` to refuse. The caller is the `viewer`, whatever
    /// the query string says.
    pub fn object_from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
        caller: &Principal,
    ) -> Result<Value, Error> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut object = serde_json::Map::new();
        for (name, value) in pairs {
            if !seen.insert(name.clone()) {
                out.push(Violation::new(
                    name,
                    ViolationCode::Duplicate,
                    "is given twice",
                ));
            } else if name == "viewer" {
                // Set from the caller below: never from the query string.
                out.push(Violation::new(
                    name,
                    ViolationCode::UnknownField,
                    "is not a parameter of this listing",
                ));
            } else if name == "actionableBy" && value == "me" {
                let principal = serde_json::to_value(caller)
                    .map_err(|error| Error::Internal(error.to_string()))?;
                object.insert(name, principal);
            } else if !value.is_empty() {
                object.insert(name, Value::String(value));
            }
        }
        let viewer =
            serde_json::to_value(caller).map_err(|error| Error::Internal(error.to_string()))?;
        object.insert("viewer".to_owned(), viewer);
        if out.is_empty() {
            Ok(Value::Object(object))
        } else {
            Err(invalid("listing query", out))
        }
    }

    /// Parses `{ status?, policyType?, limit?, cursor?, view?,
    /// actionableBy?, emergencyReview?, q? }`. A `limit` may be a number or a
    /// decimal string, as query strings carry it. `actionableBy` is a
    /// principal `{ id, roles }` and goes with `status=pending` only;
    /// `emergencyReview` implies `status=approved`.
    pub fn parse(input: Option<&Value>) -> Result<Self, Error> {
        let mut out = Vec::new();
        let mut query = Self::default();
        if let Some(mut reader) = body(input, &mut out) {
            let mut status_given = false;
            if let Some(value) = reader.optional("status")
                && let Some(status) = crate::change::parse_choice(
                    "status",
                    value,
                    &Status::ALL,
                    Status::as_str,
                    &mut out,
                )
            {
                query.status = status;
                status_given = true;
            }
            if let Some(text) = reader.optional_str("policyType", &mut out) {
                if is_policy_type(text) {
                    query.policy_type = Some(text.to_owned());
                } else {
                    out.push(Violation::new(
                        "policyType",
                        ViolationCode::InvalidFormat,
                        "must match ^[a-z][a-z0-9_.-]{0,62}$",
                    ));
                }
            }
            if let Some(value) = reader.optional("limit") {
                let number = match value {
                    Value::String(text) => match text.parse::<i64>() {
                        Ok(number) => Some(Value::from(number)),
                        Err(_) => {
                            out.push(Violation::new(
                                "limit",
                                ViolationCode::InvalidType,
                                "must be an integer",
                            ));
                            None
                        }
                    },
                    other => Some(other.clone()),
                };
                if let Some(limit) = number.and_then(|number| {
                    expect_integer(
                        "limit",
                        &number,
                        1,
                        i64::from(limits::MAX_PAGE_SIZE),
                        &mut out,
                    )
                }) {
                    query.limit = u32::try_from(limit).unwrap_or(limits::DEFAULT_PAGE_SIZE);
                }
            }
            if let Some(cursor) = reader.optional_str("cursor", &mut out) {
                query.cursor = Some(cursor.to_owned());
            }
            if let Some(value) = reader.optional("view")
                && let Some(view) = crate::change::parse_choice(
                    "view",
                    value,
                    &crate::listing::View::ALL,
                    crate::listing::View::as_str,
                    &mut out,
                )
            {
                query.view = view;
            }
            if let Some(value) = reader.optional("actionableBy") {
                query.actionable_by = parse_actionable_by(value, &mut out);
                if query.status != Status::Pending {
                    out.push(Violation::new(
                        "actionableBy",
                        ViolationCode::NotAllowed,
                        "goes only with status pending",
                    ));
                }
            }
            if let Some(value) = reader.optional("viewer") {
                match Principal::parse(value, "viewer") {
                    Ok(viewer) => query.viewer = Some(viewer),
                    Err(problems) => out.extend(problems),
                }
            }
            if let Some(value) = reader.optional("emergencyReview")
                && let Some(filter) = crate::change::parse_choice(
                    "emergencyReview",
                    value,
                    &ReviewFilter::ALL,
                    ReviewFilter::as_str,
                    &mut out,
                )
            {
                query.emergency_review = Some(filter);
                if status_given && query.status != Status::Approved {
                    out.push(Violation::new(
                        "emergencyReview",
                        ViolationCode::NotAllowed,
                        "lists approved requests: it goes with no status but approved",
                    ));
                }
                if query.actionable_by.is_some() {
                    out.push(Violation::new(
                        "emergencyReview",
                        ViolationCode::NotAllowed,
                        "does not go with actionableBy",
                    ));
                }
                query.status = Status::Approved;
            }
            if let Some(text) = reader.optional_str("q", &mut out) {
                let rule = TextRule {
                    min: 1,
                    max: limits::MAX_SEARCH_CHARS,
                    trim: true,
                    chars: CharPolicy::SingleLine,
                };
                let text = check_text("q", text, rule, &mut out);
                query.search = Some(text.to_ascii_lowercase());
            }
            reader.finish(&mut out);
        }
        if out.is_empty() {
            Ok(query)
        } else {
            Err(invalid("listing query", out))
        }
    }
}

/// An events query: `{ after?, limit? }` (a `limit` may be a decimal
/// string, as query strings carry it; 1..=500, default 100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsQuery {
    /// The event id to list after.
    pub after: Option<String>,
    /// The page size.
    pub limit: u32,
}

impl EventsQuery {
    /// Parses the options object `{ after?, limit? }` of the JS API.
    pub fn parse(input: Option<&Value>) -> Result<Self, Error> {
        let mut out = Vec::new();
        let mut pairs = Vec::new();
        if let Some(mut reader) = body(input, &mut out) {
            if let Some(after) = reader.optional_str("after", &mut out) {
                pairs.push(("after".to_owned(), after.to_owned()));
            }
            if let Some(value) = reader.optional("limit") {
                match value.as_i64() {
                    Some(limit) => pairs.push(("limit".to_owned(), limit.to_string())),
                    None => out.push(Violation::new(
                        "limit",
                        ViolationCode::InvalidType,
                        "must be an integer",
                    )),
                }
            }
            reader.finish(&mut out);
        }
        if !out.is_empty() {
            return Err(invalid("events query", out));
        }
        Self::from_pairs(pairs)
    }

    /// Parses the query string's pairs: unknown or repeated parameters are
    /// refused, an empty value is absent.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, Error> {
        let mut out = Vec::new();
        let mut query = Self {
            after: None,
            limit: crate::events::limits::DEFAULT_PAGE_SIZE,
        };
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in pairs {
            if !seen.insert(name.clone()) {
                out.push(Violation::new(
                    name,
                    ViolationCode::Duplicate,
                    "is given twice",
                ));
                continue;
            }
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "after" => query.after = Some(value),
                "limit" => match value.parse::<i64>() {
                    Ok(limit) => {
                        if let Some(limit) = expect_integer(
                            "limit",
                            &Value::from(limit),
                            1,
                            i64::from(crate::events::limits::MAX_PAGE_SIZE),
                            &mut out,
                        ) {
                            query.limit = u32::try_from(limit).unwrap_or(query.limit);
                        }
                    }
                    Err(_) => out.push(Violation::new(
                        "limit",
                        ViolationCode::InvalidType,
                        "must be an integer",
                    )),
                },
                _ => out.push(Violation::new(
                    name,
                    ViolationCode::UnknownField,
                    "is not a parameter of the event log",
                )),
            }
        }
        if let Some(after) = &query.after
            && let Err(Error::InvalidRequest { details, .. }) = crate::events::parse_cursor(after)
        {
            out.extend(details);
        }
        if out.is_empty() {
            Ok(query)
        } else {
            Err(invalid("events query", out))
        }
    }
}

/// An `actionableBy` value: a principal, or `me` where the caller is known
/// (see [`ListQuery::object_from_pairs`]).
fn parse_actionable_by(value: &Value, out: &mut Vec<Violation>) -> Option<Principal> {
    if value.is_string() {
        out.push(Violation::new(
            "actionableBy",
            ViolationCode::NotAllowed,
            "must be `me` (or, in JavaScript, a principal)",
        ));
        return None;
    }
    match Principal::parse(value, "actionableBy") {
        Ok(principal) => Some(principal),
        Err(problems) => {
            out.extend(problems);
            None
        }
    }
}

/// Parses `{ limit? }` of an expiry sweep (1..=500, default 100).
pub fn parse_expire_limit(input: Option<&Value>) -> Result<u32, Error> {
    let mut out = Vec::new();
    let mut limit = 100;
    if let Some(mut reader) = body(input, &mut out) {
        if let Some(value) = reader.optional("limit")
            && let Some(parsed) = expect_integer(
                "limit",
                value,
                1,
                i64::from(limits::MAX_PAGE_SIZE),
                &mut out,
            )
        {
            limit = u32::try_from(parsed).unwrap_or(limit);
        }
        reader.finish(&mut out);
    }
    if out.is_empty() {
        Ok(limit)
    } else {
        Err(invalid("expiry sweep", out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    /// The body types are what the schemas of the HTTP API are made from:
    /// each must be a body its parser accepts, with the values it holds.
    #[test]
    fn the_body_types_are_what_the_parsers_read() {
        fn body(value: impl Serialize) -> Value {
            serde_json::to_value(value).unwrap()
        }
        let approval = body(ApprovalBody {
            comment: Some("scoped correctly".into()),
        });
        assert_eq!(
            parse_approve(Some(&approval)).unwrap().as_deref(),
            Some("scoped correctly")
        );
        let bare = body(ApprovalBody::default());
        assert_eq!(parse_approve(Some(&bare)).unwrap(), None);
        let rejection = body(RejectionBody {
            reason: "needs a ticket".into(),
        });
        assert_eq!(parse_reject(Some(&rejection)).unwrap(), "needs a ticket");
        let comment = body(CommentBody {
            text: "see SEC-12".into(),
        });
        assert_eq!(parse_comment(Some(&comment)).unwrap(), "see SEC-12");
        parse_cancel(Some(&body(CancellationBody {}))).unwrap();
    }

    #[test]
    fn action_texts_are_trimmed_and_bounded() {
        assert_eq!(parse_approve(None).unwrap(), None);
        assert_eq!(
            parse_approve(Some(&json!({ "comment": " ok " })))
                .unwrap()
                .as_deref(),
            Some("ok")
        );
        assert_eq!(
            parse_reject(Some(&json!({ "reason": "x".repeat(4000) })))
                .unwrap()
                .len(),
            4000
        );
        let too_long = parse_reject(Some(&json!({ "reason": "x".repeat(4001) }))).unwrap_err();
        assert_eq!(too_long.code(), ErrorCode::InvalidRequest);
        assert!(parse_reject(Some(&json!({ "reason": "   " }))).is_err());
        assert!(parse_reject(None).is_err());
        assert!(parse_comment(Some(&json!({ "text": "hi", "extra": 1 }))).is_err());
        assert!(parse_comment(Some(&json!("text"))).is_err());
        assert!(parse_cancel(None).is_ok());
        assert!(parse_cancel(Some(&json!({}))).is_ok());
        assert!(parse_cancel(Some(&json!({ "why": 1 }))).is_err());
        assert!(parse_cancel(Some(&json!({ "reason": "changed my mind" }))).is_err());
    }

    #[test]
    fn named_actions_parse_their_bodies() {
        let approve = parse_action(ActionName::Approve, Some(&json!({ "comment": " ok " })));
        assert_eq!(
            approve.unwrap(),
            Action::Approve {
                comment: Some("ok".into())
            }
        );
        assert_eq!(
            parse_action(ActionName::Cancel, None).unwrap(),
            Action::Cancel
        );
        let missing = parse_action(ActionName::Reject, Some(&json!({}))).unwrap_err();
        assert_eq!(missing.code(), ErrorCode::InvalidRequest);
        assert!(parse_action(ActionName::Comment, None).is_err());
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert!(parse_idempotency_key("a").is_ok());
        assert!(parse_idempotency_key(&"k".repeat(255)).is_ok());
        assert!(parse_idempotency_key(&"k".repeat(256)).is_err());
        assert!(parse_idempotency_key("").is_err());
        assert!(parse_idempotency_key("a b").is_err());
        assert!(parse_idempotency_key("é").is_err());
    }

    #[test]
    fn list_queries_have_defaults_and_bounds() {
        assert_eq!(ListQuery::parse(None).unwrap(), ListQuery::default());
        let query = ListQuery::parse(Some(
            &json!({ "status": "approved", "limit": "500", "policyType": "iam" }),
        ))
        .unwrap();
        assert_eq!((query.status, query.limit), (Status::Approved, 500));
        for bad in [
            json!({ "limit": 0 }),
            json!({ "limit": "501" }),
            json!({ "limit": "x" }),
            json!({ "status": "done" }),
            json!({ "policyType": "IAM" }),
        ] {
            assert!(ListQuery::parse(Some(&bad)).is_err(), "{bad}");
        }
    }

    /// `q` is trimmed, its ASCII letters lowercased (others kept: `É` stays
    /// `É`); 200 characters is the limit and 201
    /// is `too_long`, counted after trimming; blank, control and bidi
    /// characters are refused with their codes.
    #[test]
    fn a_search_text_is_bounded_and_kept_lowercased() {
        let parsed = |q: &str| ListQuery::parse(Some(&json!({ "q": q })));
        assert_eq!(
            parsed("  Okta SSO ").unwrap().search.as_deref(),
            Some("okta sso")
        );
        let longest = format!(" {} ", "É".repeat(limits::MAX_SEARCH_CHARS));
        assert_eq!(
            parsed(&longest).unwrap().search,
            Some("É".repeat(limits::MAX_SEARCH_CHARS))
        );
        for (bad, code) in [
            ("x".repeat(limits::MAX_SEARCH_CHARS + 1), "too_long"),
            ("   ".to_owned(), "too_short"),
            ("a\u{0}b".to_owned(), "forbidden_character"),
            ("a\u{202E}b".to_owned(), "forbidden_character"),
        ] {
            let details = parsed(&bad).unwrap_err().details().unwrap();
            assert_eq!(details[0]["path"], "q", "{bad:?}");
            assert_eq!(details[0]["code"], code, "{bad:?}");
        }
        let not_text = ListQuery::parse(Some(&json!({ "q": 5 }))).unwrap_err();
        assert_eq!(not_text.code(), ErrorCode::InvalidRequest);
    }
}
