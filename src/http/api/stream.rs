//! A JSON answer written as it is read: the document names the same schema
//! as a whole `Json<T>`, while the bytes leave a page at a time.

use std::marker::PhantomData;

use poem::{Body, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;

/// A body that is a `T` in JSON, produced as a stream (see `files_json`).
pub(super) struct JsonStream<T> {
    body: Body,
    of: PhantomData<fn() -> T>,
}

impl<T> JsonStream<T> {
    /// `body` must be the JSON of a `T`: the document promises one.
    pub(super) fn new(body: Body) -> Self {
        JsonStream {
            body,
            of: PhantomData,
        }
    }
}

impl<T: Type> Payload for JsonStream<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> IntoResponse for JsonStream<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(<Self as Payload>::CONTENT_TYPE)
            .body(self.body)
    }
}

impl<T: Type> ApiResponse for JsonStream<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: <Self as Payload>::CONTENT_TYPE,
                    schema: <Self as Payload>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}
