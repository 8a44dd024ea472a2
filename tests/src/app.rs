//! In-process requests against the real actix apps, typed with the `mobile-contracts` types. Every
//! call states the status it expects.

use std::net::SocketAddr;

use actix_http::Request;
use actix_service::ServiceExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use actix_web::web::Bytes;
use actix_web::{App, test};
use mobile_contracts::problem::Problem;
use serde::Serialize;
use serde::de::DeserializeOwned;

type BoxedService = actix_service::boxed::RcService<Request, ServiceResponse<BoxBody>, actix_web::Error>;

/// An app under test, called in process (no socket). Requests come from `peer`, a VPN address by
/// default.
pub struct TestApp {
    pub(crate) service: BoxedService,
    /// The peer address requests appear to come from.
    pub peer: SocketAddr,
    /// The client certificate (DER) requests appear to present, as over mutual TLS.
    pub certificate: Option<Vec<u8>>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// Initialises `app` as a service.
    pub async fn new<T, B>(app: App<T>) -> Self
    where
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        let service = test::init_service(app).await;
        let boxed = actix_service::boxed::rc_service(service.map(ServiceResponse::map_into_boxed_body));
        Self {
            service: boxed,
            peer: "10.8.0.10:50000".parse().expect("address"),
            certificate: None,
        }
    }

    /// The same app, presenting no client certificate.
    pub fn clone_without_certificate(&self) -> Self {
        Self {
            service: self.service.clone(),
            peer: self.peer,
            certificate: None,
        }
    }

    /// The same app, with requests coming from `peer` (`"10.8.0.10:50000"`, `"[::1]:4000"`).
    pub fn from_peer(&self, peer: &str) -> Self {
        Self {
            service: self.service.clone(),
            peer: peer.parse().expect("peer address"),
            certificate: self.certificate.clone(),
        }
    }

    /// Sends a request built by the caller.
    pub async fn send(&self, request: TestRequest) -> TestResponse {
        let request = request.peer_addr(self.peer).to_request();
        if let Some(der) = &self.certificate {
            use actix_web::HttpMessage;
            request
                .extensions_mut()
                .insert(labedge_service::tls::PeerCertificate(der.clone().into()));
        }
        let response = match self.service.call(request).await {
            Ok(response) => response,
            Err(error) => ServiceResponse::from_err(error, TestRequest::default().to_http_request()),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = test::read_body(response).await;
        TestResponse { status, headers, body }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(TestRequest::get().uri(path)).await
    }

    /// `GET path` with a bearer token.
    pub async fn get_authed(&self, path: &str, token: &str) -> TestResponse {
        self.send(
            TestRequest::get()
                .uri(path)
                .insert_header(("authorization", format!("Bearer {token}"))),
        )
        .await
    }

    /// A JSON request.
    pub async fn json<B: Serialize>(&self, method: Method, path: &str, body: &B) -> TestResponse {
        self.send(TestRequest::default().method(method).uri(path).set_json(body))
            .await
    }

    /// A request with a raw body and content type.
    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: impl Into<Bytes>) -> TestResponse {
        self.send(
            TestRequest::default()
                .method(method)
                .uri(path)
                .insert_header(("content-type", content_type))
                .set_payload(body.into()),
        )
        .await
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl TestResponse {
    /// Asserts the status (showing the body when it differs) and returns the response.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// The body as JSON of type `T`.
    #[track_caller]
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not the expected JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as a problem document, checking its content type.
    #[track_caller]
    pub fn problem(&self) -> Problem {
        let content_type = self.header("content-type").unwrap_or_default();
        assert_eq!(content_type, "application/problem+json", "errors are problem documents");
        self.json()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
