//! WIT values to core values: the host's one place that knows both shapes.
//!
//! The guest converts the core's values to WIT (`wasm/src/component/convert.rs`);
//! this module converts them back, so the HTTP layer sees the core's types.

use signoff_core as core;
use uuid::Uuid;

use super::runtime::generated::signoff::engine::{cache, types as wit};

pub fn batch(batch: cache::Batch) -> core::Batch {
    let changes = |changes: Vec<cache::IndexChange>| {
        changes
            .into_iter()
            .map(|change| core::IndexChange {
                index: change.index,
                entry: index_entry(change.entry),
            })
            .collect()
    };
    core::Batch {
        checks: batch
            .checks
            .into_iter()
            .map(|check| core::Check {
                key: check.key,
                version: check.version,
            })
            .collect(),
        puts: batch
            .puts
            .into_iter()
            .map(|put| core::Put {
                key: put.key,
                value: put.value,
                ttl_ms: put.ttl_ms,
            })
            .collect(),
        deletes: batch.deletes,
        index_adds: changes(batch.index_adds),
        index_removes: changes(batch.index_removes),
    }
}

pub fn index_entry(entry: cache::IndexEntry) -> core::IndexEntry {
    core::IndexEntry {
        sort_key: entry.sort_key,
        member: entry.member,
    }
}

pub fn principal(principal: &core::Principal) -> wit::Principal {
    wit::Principal {
        id: principal.id.clone(),
        roles: principal.roles.clone(),
    }
}

fn time(millis: i64) -> core::Timestamp {
    core::Timestamp::from_millis(millis)
}

fn violation_code(code: wit::ViolationCode) -> core::ViolationCode {
    use core::ViolationCode as C;
    use wit::ViolationCode as W;
    match code {
        W::Required => C::Required,
        W::UnknownField => C::UnknownField,
        W::InvalidType => C::InvalidType,
        W::TooShort => C::TooShort,
        W::TooLong => C::TooLong,
        W::TooMany => C::TooMany,
        W::TooLarge => C::TooLarge,
        W::OutOfRange => C::OutOfRange,
        W::InvalidFormat => C::InvalidFormat,
        W::ForbiddenCharacter => C::ForbiddenCharacter,
        W::NotAllowed => C::NotAllowed,
        W::Duplicate => C::Duplicate,
        W::UnknownLevel => C::UnknownLevel,
    }
}

pub fn violations(violations: Vec<wit::Violation>) -> Vec<core::Violation> {
    violations
        .into_iter()
        .map(|violation| core::Violation {
            path: violation.path,
            code: violation_code(violation.code),
            message: violation.message,
        })
        .collect()
}

fn status(status: wit::Status) -> core::Status {
    match status {
        wit::Status::Pending => core::Status::Pending,
        wit::Status::Approved => core::Status::Approved,
        wit::Status::Rejected => core::Status::Rejected,
        wit::Status::Expired => core::Status::Expired,
        wit::Status::Cancelled => core::Status::Cancelled,
    }
}

pub fn error(error: wit::Error) -> core::Error {
    use core::Error as E;
    match error {
        wit::Error::InvalidRequest(invalid) => E::InvalidRequest {
            message: invalid.message,
            details: violations(invalid.details),
        },
        wit::Error::NotFound(id) => E::NotFound(id),
        wit::Error::Expired(id) => E::Expired(id),
        wit::Error::NotPending(not_pending) => E::NotPending {
            id: not_pending.id,
            status: status(not_pending.status).as_str().to_owned(),
        },
        wit::Error::SelfApproval(principal) => E::SelfApproval(principal),
        wit::Error::AlreadyApproved(principal) => E::AlreadyApproved(principal),
        wit::Error::NotEligible(not_eligible) => E::NotEligible {
            principal: not_eligible.principal,
            stage: not_eligible.stage,
        },
        wit::Error::Forbidden(why) => E::Forbidden(why),
        wit::Error::RateLimited(retry_after_seconds) => E::RateLimited {
            retry_after_seconds,
        },
        wit::Error::Conflict(why) => E::Conflict(why),
        wit::Error::Unavailable(why) => E::Unavailable(why),
        wit::Error::Internal(why) => E::Internal(why),
    }
}

fn metadata_value(value: wit::MetadataValue) -> Result<core::MetadataValue, core::Error> {
    Ok(match value {
        wit::MetadataValue::Text(text) => core::MetadataValue::String(text),
        wit::MetadataValue::Boolean(flag) => core::MetadataValue::Bool(flag),
        wit::MetadataValue::Unsigned(number) => core::MetadataValue::Number(number.into()),
        wit::MetadataValue::Signed(number) => core::MetadataValue::Number(number.into()),
        wit::MetadataValue::Float(number) => core::MetadataValue::Number(
            serde_json::Number::from_f64(number)
                .ok_or_else(|| core::Error::Internal("a metadata number is not finite".into()))?,
        ),
    })
}

fn change(change: wit::PolicyChange) -> Result<core::PolicyChange, core::Error> {
    Ok(core::PolicyChange {
        policy_id: change.policy_id,
        policy_type: change.policy_type,
        change_kind: match change.change_kind {
            wit::ChangeKind::Create => core::ChangeKind::Create,
            wit::ChangeKind::Update => core::ChangeKind::Update,
            wit::ChangeKind::Delete => core::ChangeKind::Delete,
        },
        environment: change.environment,
        title: change.title,
        justification: change.justification,
        diff: change.diff,
        risk_score: change.risk_score,
        priority: match change.priority {
            wit::Priority::Low => core::Priority::Low,
            wit::Priority::Normal => core::Priority::Normal,
            wit::Priority::High => core::Priority::High,
            wit::Priority::Urgent => core::Priority::Urgent,
        },
        metadata: change
            .metadata
            .into_iter()
            .map(|pair| Ok((pair.key, metadata_value(pair.value)?)))
            .collect::<Result<_, core::Error>>()?,
    })
}

fn explanation(explanation: wit::LevelExplanation) -> core::LevelExplanation {
    core::LevelExplanation {
        matched_rules: explanation
            .matched_rules
            .into_iter()
            .map(|matched| core::MatchedRule {
                rule: matched.rule,
                level: matched.level,
            })
            .collect(),
        deciding_rule: explanation.deciding_rule,
        default_used: explanation.default_used,
        summary: explanation.summary,
    }
}

fn action(kind: wit::ActionKind) -> core::ActionKind {
    match kind {
        wit::ActionKind::Create => core::ActionKind::Create,
        wit::ActionKind::Approve => core::ActionKind::Approve,
        wit::ActionKind::Reject => core::ActionKind::Reject,
        wit::ActionKind::Cancel => core::ActionKind::Cancel,
        wit::ActionKind::Comment => core::ActionKind::Comment,
        wit::ActionKind::Expire => core::ActionKind::Expire,
    }
}

fn uuid(id: &str) -> Result<Uuid, core::Error> {
    Uuid::parse_str(id)
        .map_err(|_| core::Error::Internal(format!("the engine answered a malformed id `{id}`")))
}

pub fn request(request: wit::ApprovalRequest) -> Result<core::ApprovalRequest, core::Error> {
    Ok(core::ApprovalRequest {
        id: uuid(&request.id)?,
        change: change(request.change)?,
        requested_by: request.requested_by,
        level: request.level,
        level_explanation: explanation(request.level_explanation),
        stages: request
            .stages
            .into_iter()
            .map(|stage| core::Stage {
                name: stage.name,
                required_approvals: stage.required_approvals,
                eligible_roles: stage.eligible_roles,
            })
            .collect(),
        status: status(request.status),
        stage: request.stage,
        approvals: request
            .approvals
            .into_iter()
            .map(|approval| core::Approval {
                by: approval.by,
                stage: approval.stage,
                at: time(approval.at),
                comment: approval.comment,
            })
            .collect(),
        rejection: request.rejection.map(|rejection| core::Rejection {
            by: rejection.by,
            stage: rejection.stage,
            at: time(rejection.at),
            reason: rejection.reason,
        }),
        created_at: time(request.created_at),
        updated_at: time(request.updated_at),
        expires_at: time(request.expires_at),
        version: request.version,
        rules_digest: request.rules_digest,
        history: request
            .history
            .into_iter()
            .map(|entry| core::HistoryEntry {
                at: time(entry.at),
                actor: entry.actor,
                action: action(entry.action),
                stage: entry.stage,
                comment: entry.comment,
            })
            .collect(),
    })
}

pub fn created(created: wit::Created) -> Result<core::Created, core::Error> {
    Ok(core::Created {
        request: request(created.request)?,
        replayed: created.replayed,
    })
}

pub fn preview(preview: wit::ChangePreview) -> core::Preview {
    core::Preview {
        valid: preview.valid,
        errors: violations(preview.errors),
        level: preview.level,
        explanation: preview.explanation.map(explanation),
    }
}

pub fn expire_report(report: wit::ExpireReport) -> Result<core::ExpireReport, core::Error> {
    Ok(core::ExpireReport {
        expired: report.expired,
        ids: report
            .ids
            .iter()
            .map(|id| uuid(id))
            .collect::<Result<_, _>>()?,
        stale_removed: report.stale_removed,
        undecodable: report.undecodable,
    })
}
