//! A browser without JavaScript: keeps cookies as a browser does (reqwest's cookie store
//! applies their Domain, Path, expiry and Secure, loopback counting as secure), follows no
//! redirect by itself, and trusts the test CAs it is given.

use std::sync::{Arc, Mutex};

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Method, RequestBuilder, Response};

pub(crate) struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
    /// labgate's public URL and the address the test server is reached at instead.
    public: Option<(String, String)>,
    /// Every `Set-Cookie` header received, as sent, for tests of the cookies' attributes.
    set_cookies: Mutex<Vec<String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::trusting(&[])
    }
}

impl Browser {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A browser that also trusts these CA certificates (PEM).
    pub(crate) fn trusting(ca_pems: &[&str]) -> Self {
        let jar = Arc::new(Jar::default());
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone());
        for pem in ca_pems {
            builder = builder
                .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
        }
        Self {
            client: builder.build().unwrap(),
            jar,
            public: None,
            set_cookies: Mutex::default(),
        }
    }

    /// Requests to `public_url` go to `address`, as a name resolved to the test server would.
    pub(crate) fn reaching(mut self, public_url: &str, address: &str) -> Self {
        self.public = Some((public_url.to_owned(), address.to_owned()));
        self
    }

    /// Where a request for `url` really goes.
    fn resolve(&self, url: &str) -> String {
        match &self.public {
            Some((public, address)) => url.replacen(public.as_str(), address, 1),
            None => url.to_owned(),
        }
    }

    /// A request for `url`, to add headers or a body to before `send`.
    pub(crate) fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, self.resolve(url))
    }

    pub(crate) async fn send(&self, request: RequestBuilder) -> Response {
        let response = request.send().await.unwrap();
        self.set_cookies.lock().unwrap().extend(
            response
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|set| set.to_str().unwrap().to_owned()),
        );
        response
    }

    pub(crate) async fn get(&self, url: &str) -> Response {
        self.send(self.request(Method::GET, url)).await
    }

    pub(crate) async fn post(&self, url: &str) -> Response {
        self.send(self.request(Method::POST, url)).await
    }

    /// Posts a form, as a browser sends one without a file input.
    pub(crate) async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Response {
        self.send(self.request(Method::POST, url).form(fields))
            .await
    }

    /// The value of the cookie `name` that this browser would send to `url`.
    pub(crate) fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = url::Url::parse(&self.resolve(url)).unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .filter_map(|pair| pair.split_once('='))
            .find(|(kept, _)| *kept == name)
            .map(|(_, value)| value.to_owned())
    }

    /// Stores a cookie as if `url` had answered with this `Set-Cookie` header.
    pub(crate) fn set_cookie(&self, url: &str, set_cookie: &str) {
        let url = url::Url::parse(&self.resolve(url)).unwrap();
        self.jar.add_cookie_str(set_cookie, &url);
    }

    /// Every `Set-Cookie` header this browser has received, in order.
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.set_cookies.lock().unwrap().clone()
    }
}
