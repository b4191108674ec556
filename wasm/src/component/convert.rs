//! Core values to WIT values: the one place that knows both shapes.

use signoff_core as core;

use super::bindings::signoff::engine::types as wit;

pub fn principal(principal: wit::Principal) -> core::Principal {
    core::Principal {
        id: principal.id,
        roles: principal.roles,
    }
}

fn violation_code(code: core::ViolationCode) -> wit::ViolationCode {
    use core::ViolationCode as C;
    use wit::ViolationCode as W;
    match code {
        C::Required => W::Required,
        C::UnknownField => W::UnknownField,
        C::InvalidType => W::InvalidType,
        C::TooShort => W::TooShort,
        C::TooLong => W::TooLong,
        C::TooMany => W::TooMany,
        C::TooLarge => W::TooLarge,
        C::OutOfRange => W::OutOfRange,
        C::InvalidFormat => W::InvalidFormat,
        C::ForbiddenCharacter => W::ForbiddenCharacter,
        C::NotAllowed => W::NotAllowed,
        C::Duplicate => W::Duplicate,
        C::UnknownLevel => W::UnknownLevel,
    }
}

pub fn violation(violation: &core::Violation) -> wit::Violation {
    wit::Violation {
        path: violation.path.clone(),
        code: violation_code(violation.code),
        message: violation.message.clone(),
    }
}

fn violations(violations: &[core::Violation]) -> Vec<wit::Violation> {
    violations.iter().map(violation).collect()
}

fn status(status: core::Status) -> wit::Status {
    match status {
        core::Status::Pending => wit::Status::Pending,
        core::Status::Approved => wit::Status::Approved,
        core::Status::Rejected => wit::Status::Rejected,
        core::Status::Expired => wit::Status::Expired,
        core::Status::Cancelled => wit::Status::Cancelled,
    }
}

/// The core's error, case for case, so the host rebuilds it exactly.
pub fn error(error: core::Error) -> wit::Error {
    use core::Error as E;
    match error {
        E::InvalidRequest { message, details } => {
            wit::Error::InvalidRequest(wit::InvalidRequestError {
                message,
                details: violations(&details),
            })
        }
        E::NotFound(id) => wit::Error::NotFound(id),
        E::Expired(id) => wit::Error::Expired(id),
        E::NotPending { id, status: name } => {
            let parsed = core::Status::ALL
                .into_iter()
                .find(|candidate| candidate.as_str() == name);
            match parsed {
                Some(parsed) => wit::Error::NotPending(wit::NotPendingError {
                    id,
                    status: status(parsed),
                }),
                None => wit::Error::Internal(format!("request `{id}` has unknown status `{name}`")),
            }
        }
        E::SelfApproval(principal) => wit::Error::SelfApproval(principal),
        E::AlreadyApproved(principal) => wit::Error::AlreadyApproved(principal),
        E::NotEligible { principal, stage } => {
            wit::Error::NotEligible(wit::NotEligibleError { principal, stage })
        }
        E::Forbidden(why) => wit::Error::Forbidden(why),
        E::RateLimited {
            retry_after_seconds,
        } => wit::Error::RateLimited(retry_after_seconds),
        E::Conflict(why) => wit::Error::Conflict(why),
        E::Unavailable(why) => wit::Error::Unavailable(why),
        E::Internal(why) => wit::Error::Internal(why),
    }
}

fn metadata_value(value: &core::MetadataValue) -> wit::MetadataValue {
    match value {
        core::MetadataValue::String(text) => wit::MetadataValue::Text(text.clone()),
        core::MetadataValue::Bool(flag) => wit::MetadataValue::Boolean(*flag),
        core::MetadataValue::Number(number) => {
            if let Some(unsigned) = number.as_u64() {
                wit::MetadataValue::Unsigned(unsigned)
            } else if let Some(signed) = number.as_i64() {
                wit::MetadataValue::Signed(signed)
            } else {
                // Validation admits finite numbers only, so this is exact.
                wit::MetadataValue::Float(number.as_f64().unwrap_or(0.0))
            }
        }
    }
}

fn change(change: core::PolicyChange) -> wit::PolicyChange {
    wit::PolicyChange {
        policy_id: change.policy_id,
        policy_type: change.policy_type,
        change_kind: match change.change_kind {
            core::ChangeKind::Create => wit::ChangeKind::Create,
            core::ChangeKind::Update => wit::ChangeKind::Update,
            core::ChangeKind::Delete => wit::ChangeKind::Delete,
        },
        environment: change.environment,
        title: change.title,
        justification: change.justification,
        diff: change.diff,
        risk_score: change.risk_score,
        priority: match change.priority {
            core::Priority::Low => wit::Priority::Low,
            core::Priority::Normal => wit::Priority::Normal,
            core::Priority::High => wit::Priority::High,
            core::Priority::Urgent => wit::Priority::Urgent,
        },
        metadata: change
            .metadata
            .iter()
            .map(|(key, value)| wit::MetadataPair {
                key: key.clone(),
                value: metadata_value(value),
            })
            .collect(),
    }
}

fn explanation(explanation: core::LevelExplanation) -> wit::LevelExplanation {
    wit::LevelExplanation {
        matched_rules: explanation
            .matched_rules
            .into_iter()
            .map(|matched| wit::MatchedRule {
                rule: matched.rule,
                level: matched.level,
            })
            .collect(),
        deciding_rule: explanation.deciding_rule,
        default_used: explanation.default_used,
        summary: explanation.summary,
    }
}

fn action(kind: core::ActionKind) -> wit::ActionKind {
    match kind {
        core::ActionKind::Create => wit::ActionKind::Create,
        core::ActionKind::Approve => wit::ActionKind::Approve,
        core::ActionKind::Reject => wit::ActionKind::Reject,
        core::ActionKind::Cancel => wit::ActionKind::Cancel,
        core::ActionKind::Comment => wit::ActionKind::Comment,
        core::ActionKind::Expire => wit::ActionKind::Expire,
    }
}

pub fn request(request: core::ApprovalRequest) -> wit::ApprovalRequest {
    wit::ApprovalRequest {
        id: request.id.to_string(),
        change: change(request.change),
        requested_by: request.requested_by,
        level: request.level,
        level_explanation: explanation(request.level_explanation),
        stages: request
            .stages
            .into_iter()
            .map(|stage| wit::Stage {
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
            .map(|approval| wit::Approval {
                by: approval.by,
                stage: approval.stage,
                at: approval.at.as_millis(),
                comment: approval.comment,
            })
            .collect(),
        rejection: request.rejection.map(|rejection| wit::Rejection {
            by: rejection.by,
            stage: rejection.stage,
            at: rejection.at.as_millis(),
            reason: rejection.reason,
        }),
        created_at: request.created_at.as_millis(),
        updated_at: request.updated_at.as_millis(),
        expires_at: request.expires_at.as_millis(),
        version: request.version,
        rules_digest: request.rules_digest,
        history: request
            .history
            .into_iter()
            .map(|entry| wit::HistoryEntry {
                at: entry.at.as_millis(),
                actor: entry.actor,
                action: action(entry.action),
                stage: entry.stage,
                comment: entry.comment,
            })
            .collect(),
    }
}

pub fn created(created: core::Created) -> wit::Created {
    wit::Created {
        request: request(created.request),
        replayed: created.replayed,
    }
}

pub fn preview(preview: core::Preview) -> wit::ChangePreview {
    wit::ChangePreview {
        valid: preview.valid,
        errors: violations(&preview.errors),
        level: preview.level,
        explanation: preview.explanation.map(explanation),
    }
}

pub fn expire_report(report: core::ExpireReport) -> wit::ExpireReport {
    wit::ExpireReport {
        expired: report.expired,
        ids: report.ids.iter().map(ToString::to_string).collect(),
        stale_removed: report.stale_removed,
        undecodable: report.undecodable,
    }
}
