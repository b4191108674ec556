//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API
//! (docs/CONTRACT.md, section 7), health and metrics included.
//!
//! It is generated, not written: the operations come from the handlers'
//! `utoipa::path` attributes ([`super::api`]) and the schemas from the types
//! the handlers send, which derive their schemas from the same serde
//! attributes that write the wire. What no attribute can say is added by
//! modifiers that mirror the server's own code: the bearer schemes that
//! [`super::auth`] checks, the `x-request-id` that a layer of the router
//! puts on every answer, and the schemas of the listing's summary view,
//! derived from the full request's by leaving out what the core leaves out.

pub mod responses;

use std::sync::LazyLock;

use axum::Json;
use axum::response::{IntoResponse, Response};
use signoff_core::listing::{SUMMARY_OMITS, SUMMARY_OMITS_FROM_CHANGE};
use signoff_core::{Page, ReviewFilter, RulesWarning, Status, View};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, Object, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{HeaderBuilder, ObjectBuilder, RefOr, Required};
use utoipa::{Modify, OpenApi};

use super::api;
use super::error::ErrorEnvelope;
use super::events;

/// The security scheme of the principals' bearer tokens; the operations name
/// it as `"bearer"` in their `security(...)`.
pub const BEARER: &str = "bearer";

/// The security scheme of `/metrics` when the server has a metrics token;
/// named `"metricsToken"` by that operation.
pub const METRICS_TOKEN: &str = "metricsToken";

/// The header that carries a call's request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// The groups of operations.
pub mod tags {
    /// Filing, reading and deciding change requests.
    pub const REQUESTS: &str = "requests";
    /// Validating a change without filing it.
    pub const PREVIEW: &str = "preview";
    /// The rules document.
    pub const RULES: &str = "rules";
    /// The caller.
    pub const PRINCIPALS: &str = "principals";
    /// The event log.
    pub const EVENTS: &str = "events";
    /// Health, readiness, metrics and this document.
    pub const OPERATIONS: &str = "operations";
}

/// The document: every route of the router, with its statuses, headers and
/// schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "signoff",
        description = "The approval engine for policy changes, over HTTP (docs/CONTRACT.md, section 7). Every `/v1` route needs `Authorization: Bearer <token>`; every failure answers `{ \"error\": { \"code\", \"message\", \"details\"? } }`."
    ),
    paths(
        api::create,
        api::list,
        api::get_request,
        api::approve,
        api::reject,
        api::cancel,
        api::comment,
        api::amend,
        api::review,
        api::preview,
        api::me,
        api::principals,
        api::get_rules,
        api::put_rules,
        api::simulate_rules,
        events::list,
        events::stream,
        api::metrics,
        api::healthz,
        api::readyz,
        serve,
    ),
    components(
        // Schemas that only a query parameter names (`Status`, `View`) are
        // not collected from the operations, and `Page` is what the
        // summary view's schemas are derived from.
        schemas(ErrorEnvelope, Page, Status, View, api::ActionableBy, ReviewFilter, RulesWarning),
        responses(
            responses::InvalidRequest,
            responses::Unauthenticated,
            responses::Forbidden,
            responses::NotFound,
            responses::RequestTimeout,
            responses::Conflict,
            responses::PreconditionFailed,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::RateLimited,
            responses::Unavailable,
        ),
    ),
    modifiers(&SecuritySchemes, &SummaryView, &RulesReplaced, &RequestIds, &EmptyMeansAbsent),
    tags(
        (name = tags::REQUESTS, description = "Filing, reading and deciding change requests."),
        (name = tags::PREVIEW, description = "Validating a change and deciding its level without filing it."),
        (name = tags::RULES, description = "The rules document in force."),
        (name = tags::PRINCIPALS, description = "The caller."),
        (name = tags::EVENTS, description = "The event log: what happened, in order."),
        (name = tags::OPERATIONS, description = "Health, readiness, metrics and this document; no principal's token needed."),
    ),
)]
pub struct ApiDoc;

/// The document that `/openapi.json` serves.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Built once: the document does not change while the server runs.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(document);

/// This document
///
/// The OpenAPI 3.1 document of every route, status, header and schema the
/// server serves. Needs no token.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tags::OPERATIONS,
    responses((status = 200, description = "The OpenAPI document.", body = Object, content_type = "application/json")),
)]
pub async fn serve() -> Response {
    Json(&*DOCUMENT).into_response()
}

/// The bearer schemes: a principal's token, and the metrics token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
            scheme.description = Some(description.to_owned());
            SecurityScheme::Http(scheme)
        };
        components.add_security_scheme(
            BEARER,
            bearer(
                "A principal's token (the server keeps only its SHA-256), or, when the \
                 server is configured for OpenID Connect, a JWT of its issuer.",
            ),
        );
        components.add_security_scheme(
            METRICS_TOKEN,
            bearer("The token given with `--metrics-token`; without one, `/metrics` is open."),
        );
    }
}

/// Every operation takes an optional `x-request-id` and every answer carries
/// one (the caller's, or a new UUID), as the router's request-id layers do.
struct RequestIds;

impl Modify for RequestIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let parameter = ParameterBuilder::new()
            .name(REQUEST_ID)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Kept as the call's request id; a new UUID when absent.",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        let header = HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some("The call's request id, also in its log line."))
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(parameter.clone().into());
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response
                            .headers
                            .insert(REQUEST_ID.to_owned(), header.clone().into());
                    }
                }
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            for response in components.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert(REQUEST_ID.to_owned(), header.clone().into());
                }
            }
        }
    }
}

/// The operations of a path.
/// An empty query parameter (`?limit=`) means the parameter is absent, by
/// contract: each query parameter's schema also admits the empty string, so
/// that the document says what the server accepts.
struct EmptyMeansAbsent;

impl Modify for EmptyMeansAbsent {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let empty = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0))
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                for parameter in operation.parameters.iter_mut().flatten() {
                    let RefOr::T(parameter) = parameter else {
                        continue;
                    };
                    if parameter.parameter_in != ParameterIn::Query {
                        continue;
                    }
                    if let Some(schema) = parameter.schema.take() {
                        let either = AnyOfBuilder::new().item(schema).item(empty());
                        parameter.schema = Some(either.into());
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// The schemas of a listing page: `Page` for the full view, `SummaryPage`
/// for `view=summary`, whose items lack the fields the core leaves out
/// ([`SUMMARY_OMITS`], [`SUMMARY_OMITS_FROM_CHANGE`]); `ListingPage` is
/// either.
struct SummaryView;

impl SummaryView {
    const PAGE: &str = "Page";
    const REQUEST: &str = "ApprovalRequest";
    const CHANGE: &str = "PolicyChange";
    const REQUEST_SUMMARY: &str = "ApprovalRequestSummary";
    const CHANGE_SUMMARY: &str = "PolicyChangeSummary";
    const SUMMARY_PAGE: &str = "SummaryPage";
    const LISTING_PAGE: &str = "ListingPage";
}

/// `object` without the properties `omitted`.
fn without(object: &Object, omitted: &[&str]) -> Object {
    let mut object = object.clone();
    for field in omitted {
        object.properties.shift_remove(*field);
        object.required.retain(|name| name != field);
    }
    object
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}

impl Modify for SummaryView {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let object_of = |name: &str| match components.schemas.get(name) {
            Some(RefOr::T(Schema::Object(object))) => Some(object.clone()),
            _ => None,
        };
        // A schema missing here leaves `ListingPage` dangling, which the
        // tests of the document catch.
        let (Some(request), Some(change), Some(page)) = (
            object_of(Self::REQUEST),
            object_of(Self::CHANGE),
            object_of(Self::PAGE),
        ) else {
            return;
        };
        let mut change_summary = without(&change, &SUMMARY_OMITS_FROM_CHANGE);
        change_summary.description = Some("A request's change, in the summary view.".to_owned());
        let mut request_summary = without(&request, &SUMMARY_OMITS);
        request_summary.description =
            Some("A stored change request, in the summary view.".to_owned());
        request_summary
            .properties
            .insert("change".to_owned(), reference(Self::CHANGE_SUMMARY));
        let mut summary_page = page;
        summary_page.properties.insert(
            "items".to_owned(),
            ArrayBuilder::new()
                .items(reference(Self::REQUEST_SUMMARY))
                .build()
                .into(),
        );
        summary_page.description = Some("One page of a listing with `view=summary`.".to_owned());
        let listing = AnyOfBuilder::new()
            .item(reference(Self::PAGE))
            .item(reference(Self::SUMMARY_PAGE))
            .description(Some(
                "One page of a listing: `Page` in the full view, `SummaryPage` with `view=summary`.",
            ))
            .build();
        let schemas = &mut components.schemas;
        schemas.insert(Self::CHANGE_SUMMARY.to_owned(), change_summary.into());
        schemas.insert(Self::REQUEST_SUMMARY.to_owned(), request_summary.into());
        schemas.insert(Self::SUMMARY_PAGE.to_owned(), summary_page.into());
        schemas.insert(
            Self::LISTING_PAGE.to_owned(),
            RefOr::T(Schema::AnyOf(listing)),
        );
    }
}

/// The answer of `PUT /v1/rules`: the rules document now in force with the
/// `warnings` of the stages the known principals could never meet, derived
/// from the `Rules` schema so that the two never drift apart.
struct RulesReplaced;

impl RulesReplaced {
    const RULES: &str = "Rules";
    const REPLACED: &str = "RulesReplaced";
    const WARNING: &str = "RulesWarning";
}

impl Modify for RulesReplaced {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        // A schema missing here leaves `RulesReplaced` dangling, which the
        // tests of the document catch.
        let Some(RefOr::T(Schema::Object(rules))) = components.schemas.get(Self::RULES) else {
            return;
        };
        let mut replaced = rules.clone();
        replaced.properties.insert(
            "warnings".to_owned(),
            ArrayBuilder::new()
                .items(reference(Self::WARNING))
                .build()
                .into(),
        );
        replaced.required.push("warnings".to_owned());
        replaced.description = Some(
            "The rules now in force, with the stages the known principals could never meet as `warnings` (which never refuse a document)."
                .to_owned(),
        );
        components
            .schemas
            .insert(Self::REPLACED.to_owned(), replaced.into());
    }
}
