//! Method routing that answers 405 with an `Allow` header, as HTTP asks.
//! poem's `RouteMethod` refuses an unknown method without saying which
//! ones it takes; these drop-in `get`/`post`/… builders remember them.
//! (`/api` gets its `Allow` from the OpenAPI document instead: see `api`.)

use poem::error::MethodNotAllowedError;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoEndpoint, IntoResponse, Request, Response, RouteMethod};

/// A [`RouteMethod`] that knows its methods.
pub struct Methods {
    route: RouteMethod,
    methods: Vec<Method>,
}

impl Methods {
    fn with(mut self, method: Method, ep: impl IntoEndpoint<Endpoint: 'static>) -> Self {
        self.route = self.route.method(method.clone(), ep);
        self.methods.push(method);
        self
    }

    #[must_use]
    pub fn get(self, ep: impl IntoEndpoint<Endpoint: 'static>) -> Self {
        self.with(Method::GET, ep)
    }

    #[must_use]
    pub fn post(self, ep: impl IntoEndpoint<Endpoint: 'static>) -> Self {
        self.with(Method::POST, ep)
    }

    #[must_use]
    pub fn delete(self, ep: impl IntoEndpoint<Endpoint: 'static>) -> Self {
        self.with(Method::DELETE, ep)
    }

    #[must_use]
    pub fn patch(self, ep: impl IntoEndpoint<Endpoint: 'static>) -> Self {
        self.with(Method::PATCH, ep)
    }

    #[must_use]
    pub fn put(self, ep: impl IntoEndpoint<Endpoint: 'static>) -> Self {
        self.with(Method::PUT, ep)
    }
}

fn empty() -> Methods {
    Methods {
        route: RouteMethod::new(),
        methods: Vec::new(),
    }
}

pub fn get(ep: impl IntoEndpoint<Endpoint: 'static>) -> Methods {
    empty().get(ep)
}

pub fn post(ep: impl IntoEndpoint<Endpoint: 'static>) -> Methods {
    empty().post(ep)
}

pub fn delete(ep: impl IntoEndpoint<Endpoint: 'static>) -> Methods {
    empty().delete(ep)
}

/// The `Allow` value for `methods`; GET implies HEAD, which poem answers
/// from the GET handler.
pub fn allow_value(methods: &[Method]) -> String {
    let mut names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        names.push("HEAD");
    }
    names.join(", ")
}

/// Adds `Allow` to a 405 answer.
pub fn add_allow(resp: &mut Response, allow: &str) {
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Ok(value) = HeaderValue::from_str(allow)
    {
        resp.headers_mut().insert(header::ALLOW, value);
    }
}

impl Endpoint for Methods {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match self.route.call(req).await {
            Err(err) if err.is::<MethodNotAllowedError>() => {
                let mut resp = err.into_response();
                add_allow(&mut resp, &allow_value(&self.methods));
                Ok(resp)
            }
            other => other,
        }
    }
}

/// Wraps an endpoint that only answers `methods` itself (static assets,
/// a single-method handler) so its 405 says what it takes.
pub fn only<E: Endpoint + 'static>(
    methods: &'static [Method],
    ep: E,
) -> impl Endpoint<Output = Response> {
    let allow = allow_value(methods);
    poem::EndpointExt::around(ep, move |ep, req| {
        let allow = allow.clone();
        async move {
            let mut resp = match ep.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => e.into_response(),
            };
            add_allow(&mut resp, &allow);
            Ok(resp)
        }
    })
}
