//! Problems in French or English (issue 15 item 6): every problem text written in the tree has a
//! French form in `mobile_contracts::i18n::CATALOGUE` (a scan of the sources), and both services
//! answer a problem in the language of the request's `Accept-Language`, English by default, with
//! the same `type`, `code`, `status` and pointers either way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use actix_web::test::TestRequest;
use labedge_protocol::relay::RelayedMutation;
use labedge_tests::app::{TestApp, TestResponse};
use labedge_tests::cloud::{TestCloud, relayed};
use labedge_tests::gateway::{ADMIN_PEER, TestGateway};
use mobile_contracts::i18n::french;
use mobile_contracts::problem::{ErrorCode, Problem};
use mobile_contracts::routes;
use serde_json::json;
use syn::visit::Visit;
use uuid::Uuid;

// ------------------------------------------------------------------------------------------------
// The scan.
//
// A problem text reaches a client through a few doors ("sinks"): `.detail(…)`, `.with_detail(…)`,
// `ApiError::detail(_, …)`, `FieldError::new(_, _, …)` and `FieldError { message, … }`, validator's
// `message = "…"` and `.with_message(…)`, the contract's rules `fail(_, …)`/`ensure(_, _, …)`, serde's
// `Error::custom(…)`, and in `mobile-contracts` the `#[error("…")]` of its parse errors. The scan
// reads every non-test function of the services' crates, follows what is passed to a sink back to
// its literals (through `let`s, `match`/`if` arms, `.into()`, `format!`), and checks each against the
// catalogue, `format!` arguments standing as `{}`. A function that passes its own parameter to a
// sink becomes a sink itself (`writes::invalid(pointer, message)`), so helpers need no listing. What
// cannot be followed (a text computed by a call) must be listed in `COMPUTED` with the reason it is
// covered, or the scan fails: a new kind of door cannot open unnoticed.

/// The crates whose texts reach clients.
const SOURCES: [&str; 6] = [
    "mobile-contracts/src",
    "service/src",
    "edge-gateway/src",
    "api/src",
    "protocol/src",
    "schema/src",
];

/// Sinks among method calls: name → index of the text among the arguments.
const METHOD_SINKS: [(&str, usize); 3] = [("detail", 0), ("with_detail", 0), ("with_message", 0)];

/// Sinks among path calls (by the last segment; `new` only as `FieldError::new`).
const CALL_SINKS: [(&str, usize); 5] = [("detail", 1), ("fail", 1), ("ensure", 2), ("custom", 0), ("new", 2)];

/// Functions whose every returned text is a problem text: they are called where a sink's argument
/// cannot be followed (below).
const TEXT_FUNCTIONS: [(&str, &str); 3] = [
    ("mobile-contracts/src/problem.rs", "message_for"),
    ("mobile-contracts/src/patients.rs", "message"),
    ("service/src/error.rs", "constraint_field"),
];

/// Functions that give a sink a text the scan cannot follow, and why that text is covered anyway.
const COMPUTED: [(&str, &str, &str); 6] = [
    (
        "mobile-contracts/src/problem.rs",
        "collect_errors",
        "message_for, a text function; every branch is also checked by problem.rs's unit tests",
    ),
    (
        "mobile-contracts/src/patients.rs",
        "validate",
        "SearchTermError::message, a text function",
    ),
    (
        "service/src/error.rs",
        "database_problem",
        "constraint_field, a text function",
    ),
    (
        "service/src/http.rs",
        "json_problem",
        "serde's own messages, values redacted: the serde part of the catalogue",
    ),
    (
        "edge-gateway/src/routes/paper_prescriptions.rs",
        "read_upload",
        "the JSON part's serde messages through Problem::from_json_error, as json_problem: the serde part of the catalogue",
    ),
    (
        "service/src/http.rs",
        "serde_urlencoded_lite",
        "serde's own messages, values redacted: the serde part of the catalogue",
    ),
];

/// What the scan found.
#[derive(Debug, Default)]
struct Found {
    /// (file, function) → the texts given to a sink there.
    texts: BTreeMap<(String, String), BTreeSet<String>>,
    /// Sinks whose argument could not be followed: (file, function).
    opaque: BTreeSet<(String, String)>,
    /// Functions passing a parameter to a sink: (name, is a method, number of arguments, index of
    /// the text among them); the number tells apart two helpers of the same name.
    derived: BTreeSet<(String, bool, usize, usize)>,
}

/// The function being read.
struct Function<'ast> {
    name: String,
    /// Parameter names, `self` left out.
    params: Vec<String>,
    is_method: bool,
    body: &'ast syn::Block,
}

struct Scan<'a, 'ast> {
    file: &'a str,
    in_contracts: bool,
    derived: &'a BTreeSet<(String, bool, usize, usize)>,
    found: &'a mut Found,
    function: Vec<Function<'ast>>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        (a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| l.tokens.to_string() == "test"))
            || a.path().is_ident("test")
    })
}

/// `format!`'s first argument with every `{…}` as `{}` (and `{{`/`}}` as braces).
fn format_pattern(template: &str) -> String {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                for next in chars.by_ref() {
                    if next == '}' {
                        break;
                    }
                }
                out.push_str("{}");
            }
            _ => out.push(c),
        }
    }
    out
}

/// The literals an expression can evaluate to, or `Err(())` when one of them cannot be followed.
/// A parameter of the enclosing function is no literal: that function becomes a sink instead.
fn texts_of(
    expr: &syn::Expr,
    function: Option<&Function<'_>>,
    found_params: &mut Vec<usize>,
) -> Result<Vec<String>, ()> {
    use syn::Expr;
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s), ..
        }) => Ok(vec![s.value()]),
        Expr::Macro(m) if m.mac.path.is_ident("format") || m.mac.path.is_ident("format_args") => {
            let args = m
                .mac
                .parse_body_with(syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated)
                .map_err(|_| ())?;
            match args.first() {
                Some(Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s), ..
                })) => Ok(vec![format_pattern(&s.value())]),
                _ => Err(()),
            }
        }
        Expr::Reference(r) => texts_of(&r.expr, function, found_params),
        Expr::Paren(p) => texts_of(&p.expr, function, found_params),
        Expr::Group(g) => texts_of(&g.expr, function, found_params),
        // (pointer, message) pairs: the message is the last element.
        Expr::Tuple(t) => t.elems.last().map_or(Err(()), |e| texts_of(e, function, found_params)),
        Expr::MethodCall(call) if ["to_owned", "to_string", "into", "clone"].contains(&&*call.method.to_string()) => {
            texts_of(&call.receiver, function, found_params)
        }
        Expr::Call(call) => {
            let Expr::Path(path) = &*call.func else { return Err(()) };
            let last = path
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default();
            match (last.as_str(), call.args.first()) {
                ("Borrowed" | "Owned" | "from" | "Some", Some(arg)) => texts_of(arg, function, found_params),
                _ => Err(()),
            }
        }
        Expr::Match(m) => {
            let mut all = Vec::new();
            for arm in &m.arms {
                all.extend(texts_of(&arm.body, function, found_params)?);
            }
            Ok(all)
        }
        Expr::If(i) => {
            let mut all = block_texts(&i.then_branch, function, found_params)?;
            if let Some((_, otherwise)) = &i.else_branch {
                all.extend(texts_of(otherwise, function, found_params)?);
            }
            Ok(all)
        }
        Expr::Block(b) => block_texts(&b.block, function, found_params),
        Expr::Path(p) if p.path.segments.len() == 1 => {
            let name = p.path.segments[0].ident.to_string();
            let Some(function) = function else { return Err(()) };
            if let Some(index) = function.params.iter().position(|param| *param == name) {
                found_params.push(index);
                return Ok(Vec::new());
            }
            match local_init(function.body, &name) {
                Some(init) => texts_of(init, Some(function), found_params),
                None => Err(()),
            }
        }
        _ => Err(()),
    }
}

fn block_texts(
    block: &syn::Block,
    function: Option<&Function<'_>>,
    found_params: &mut Vec<usize>,
) -> Result<Vec<String>, ()> {
    match block.stmts.last() {
        Some(syn::Stmt::Expr(tail, None)) => texts_of(tail, function, found_params),
        _ => Ok(Vec::new()),
    }
}

/// The initialiser of `let name = …` in `body`, at any depth.
fn local_init<'ast>(body: &'ast syn::Block, name: &str) -> Option<&'ast syn::Expr> {
    struct Find<'n, 'ast> {
        name: &'n str,
        init: Option<&'ast syn::Expr>,
    }
    impl<'ast> Visit<'ast> for Find<'_, 'ast> {
        fn visit_local(&mut self, local: &'ast syn::Local) {
            if let (syn::Pat::Ident(ident), Some(init)) = (&local.pat, &local.init)
                && ident.ident == self.name
                && self.init.is_none()
            {
                self.init = Some(&init.expr);
            }
            syn::visit::visit_local(self, local);
        }
    }
    let mut find = Find { name, init: None };
    find.visit_block(body);
    find.init
}

impl<'ast> Scan<'_, 'ast> {
    fn key(&self) -> (String, String) {
        let name = self.function.last().map_or_else(String::new, |f| f.name.clone());
        (self.file.to_owned(), name)
    }

    fn record_text(&mut self, text: String) {
        let key = self.key();
        self.found.texts.entry(key).or_default().insert(text);
    }

    /// Follows a sink's argument.
    fn sink(&mut self, arg: &syn::Expr) {
        let mut params = Vec::new();
        match texts_of(arg, self.function.last(), &mut params) {
            Ok(texts) => texts.into_iter().for_each(|t| self.record_text(t)),
            Err(()) => {
                let key = self.key();
                self.found.opaque.insert(key);
            }
        }
        if let Some(function) = self.function.last() {
            for index in params {
                self.found
                    .derived
                    .insert((function.name.clone(), function.is_method, function.params.len(), index));
            }
        }
    }

    fn enter(&mut self, name: String, sig: &'ast syn::Signature, body: &'ast syn::Block) {
        let params = sig
            .inputs
            .iter()
            .filter_map(|input| match input {
                syn::FnArg::Typed(t) => Some(match &*t.pat {
                    syn::Pat::Ident(i) => i.ident.to_string(),
                    _ => String::new(),
                }),
                syn::FnArg::Receiver(_) => None,
            })
            .collect();
        let is_method = sig.receiver().is_some();
        if TEXT_FUNCTIONS.contains(&(self.file, name.as_str())) {
            let function = Function {
                name: name.clone(),
                params: Vec::new(),
                is_method,
                body,
            };
            // Every returned text; what cannot be followed (a bound read from a parameter) is not text.
            let mut returned = Vec::new();
            collect_returns(body, &function, &mut returned);
            self.function.push(function);
            for text in returned {
                self.record_text(text);
            }
            self.function.pop();
        }
        self.function.push(Function {
            name,
            params,
            is_method,
            body,
        });
    }

    /// `message = "…"` inside `#[validate(…)]`; `#[error("…")]` in the contract's parse errors.
    fn attributes(&mut self, attrs: &'ast [syn::Attribute]) {
        for attr in attrs {
            if attr.path().is_ident("validate") {
                for text in validate_messages(attr) {
                    self.record_text(text);
                }
            } else if self.in_contracts
                && attr.path().is_ident("error")
                && let Ok(lit) = attr.parse_args::<syn::LitStr>()
            {
                self.record_text(format_pattern(&lit.value()));
            }
        }
    }
}

/// The returned texts of a text function: its tail and its `return`s, arms and branches followed.
fn collect_returns(body: &syn::Block, function: &Function<'_>, out: &mut Vec<String>) {
    fn follow(expr: &syn::Expr, function: &Function<'_>, out: &mut Vec<String>) {
        match expr {
            syn::Expr::Match(m) => m.arms.iter().for_each(|arm| follow(&arm.body, function, out)),
            syn::Expr::If(i) => {
                if let Some(syn::Stmt::Expr(tail, None)) = i.then_branch.stmts.last() {
                    follow(tail, function, out);
                }
                if let Some((_, otherwise)) = &i.else_branch {
                    follow(otherwise, function, out);
                }
            }
            syn::Expr::Block(b) => {
                if let Some(syn::Stmt::Expr(tail, None)) = b.block.stmts.last() {
                    follow(tail, function, out);
                }
            }
            syn::Expr::Call(call) if matches!(&*call.func, syn::Expr::Path(p) if p.path.is_ident("Some")) => {
                call.args.iter().for_each(|a| follow(a, function, out));
            }
            other => out.extend(texts_of(other, Some(function), &mut Vec::new()).unwrap_or_default()),
        }
    }
    struct Returns<'f, 'o, 'ast> {
        function: &'f Function<'ast>,
        out: &'o mut Vec<String>,
    }
    impl<'ast> Visit<'ast> for Returns<'_, '_, 'ast> {
        fn visit_expr_return(&mut self, ret: &'ast syn::ExprReturn) {
            if let Some(expr) = &ret.expr {
                follow(expr, self.function, self.out);
            }
        }
    }
    Returns { function, out }.visit_block(body);
    if let Some(syn::Stmt::Expr(tail, None)) = body.stmts.last() {
        follow(tail, function, out);
    }
}

/// The `message = "…"` literals of a `#[validate(…)]` attribute, at any depth.
fn validate_messages(attr: &syn::Attribute) -> Vec<String> {
    fn walk(meta: syn::meta::ParseNestedMeta<'_>, out: &mut Vec<String>) -> syn::Result<()> {
        if meta.input.peek(syn::Token![=]) {
            let value: syn::Expr = meta.value()?.parse()?;
            if meta.path.is_ident("message")
                && let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s), ..
                }) = value
            {
                out.push(s.value());
            }
        } else if meta.input.peek(syn::token::Paren) {
            meta.parse_nested_meta(|inner| walk(inner, out))?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    attr.parse_nested_meta(|meta| walk(meta, &mut out))
        .unwrap_or_else(|e| panic!("a #[validate] the scan cannot read: {e}"));
    out
}

impl<'ast> Visit<'ast> for Scan<'_, 'ast> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_cfg_test(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if is_cfg_test(&item.attrs) {
            return;
        }
        self.enter(item.sig.ident.to_string(), &item.sig, &item.block);
        syn::visit::visit_item_fn(self, item);
        self.function.pop();
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if is_cfg_test(&item.attrs) {
            return;
        }
        self.enter(item.sig.ident.to_string(), &item.sig, &item.block);
        syn::visit::visit_impl_item_fn(self, item);
        self.function.pop();
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        self.attributes(&field.attrs);
        syn::visit::visit_field(self, field);
    }

    fn visit_variant(&mut self, variant: &'ast syn::Variant) {
        self.attributes(&variant.attrs);
        syn::visit::visit_variant(self, variant);
    }

    fn visit_item_struct(&mut self, item: &'ast syn::ItemStruct) {
        self.attributes(&item.attrs);
        syn::visit::visit_item_struct(self, item);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let name = call.method.to_string();
        let index = METHOD_SINKS
            .iter()
            .find(|(sink, _)| *sink == name)
            .map(|(_, i)| *i)
            .or_else(|| {
                self.derived
                    .iter()
                    .find(|(sink, method, arity, _)| *method && *sink == name && *arity == call.args.len())
                    .map(|(_, _, _, i)| *i)
            });
        if let Some(arg) = index.and_then(|i| call.args.iter().nth(i)) {
            self.sink(arg);
        }
        syn::visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(path) = &*call.func {
            let segments: Vec<String> = path.path.segments.iter().map(|s| s.ident.to_string()).collect();
            let name = segments.last().cloned().unwrap_or_default();
            let fixed = CALL_SINKS.iter().find(|(sink, _)| *sink == name).map(|(_, i)| *i);
            let fixed = match name.as_str() {
                "new" if !segments.iter().any(|s| s == "FieldError") => None,
                "detail" if call.args.len() != 2 => None,
                _ => fixed,
            };
            let index = fixed.or_else(|| {
                self.derived
                    .iter()
                    .find(|(sink, method, arity, _)| !*method && *sink == name && *arity == call.args.len())
                    .map(|(_, _, _, i)| *i)
            });
            if let Some(arg) = index.and_then(|i| call.args.iter().nth(i)) {
                self.sink(arg);
            }
        }
        syn::visit::visit_expr_call(self, call);
    }

    // syn leaves a macro's body as tokens: `vec![FieldError::new(…)]` is read as its expressions,
    // inside the same function.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(exprs) = mac.parse_body_with(parser) {
            let function = self.function.last().map(|f| Function {
                name: f.name.clone(),
                params: f.params.clone(),
                is_method: f.is_method,
                body: f.body,
            });
            let mut inner = Scan {
                file: self.file,
                in_contracts: self.in_contracts,
                derived: self.derived,
                found: &mut *self.found,
                function: function.into_iter().collect(),
            };
            for expr in &exprs {
                inner.visit_expr(expr);
            }
        }
    }

    fn visit_expr_struct(&mut self, expr: &'ast syn::ExprStruct) {
        if expr.path.segments.last().is_some_and(|s| s.ident == "FieldError") {
            for field in &expr.fields {
                if matches!(&field.member, syn::Member::Named(name) if name == "message") {
                    self.sink(&field.expr);
                }
            }
        }
        syn::visit::visit_expr_struct(self, expr);
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Reads the tree until no new helper sink turns up.
fn scan_tree() -> Found {
    let root = workspace();
    let mut files = Vec::new();
    for dir in SOURCES {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let parsed: Vec<(String, syn::File)> = files
        .iter()
        .map(|path| {
            let name = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(path).unwrap();
            let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, file)
        })
        .collect();
    let mut derived = BTreeSet::new();
    loop {
        let mut found = Found::default();
        for (name, file) in &parsed {
            let mut scan = Scan {
                file: name,
                in_contracts: name.starts_with("mobile-contracts/"),
                derived: &derived,
                found: &mut found,
                function: Vec::new(),
            };
            scan.visit_file(file);
        }
        if found.derived.is_subset(&derived) {
            return found;
        }
        derived.extend(found.derived);
    }
}

#[test]
fn every_problem_text_in_the_tree_has_a_french_form() {
    let found = scan_tree();
    let mut missing = Vec::new();
    for ((file, function), texts) in &found.texts {
        for text in texts {
            if french(text).is_none() {
                missing.push(format!("{file} ({function}): {text:?}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "problem texts without a French form: add them to mobile-contracts/src/i18n.rs's CATALOGUE\n  {}",
        missing.join("\n  ")
    );
    let unexplained: Vec<String> = found
        .opaque
        .iter()
        .filter(|(file, function)| !COMPUTED.iter().any(|(f, n, _)| f == file && n == function))
        .map(|(file, function)| format!("{file} ({function})"))
        .collect();
    assert!(
        unexplained.is_empty(),
        "a problem text the scan cannot follow back to its literals: pass a literal (or format!), \
         or list the function in COMPUTED with the reason its texts have French forms\n  {}",
        unexplained.join("\n  ")
    );
    let stale: Vec<_> = COMPUTED
        .iter()
        .filter(|(file, function, _)| !found.opaque.contains(&((*file).to_owned(), (*function).to_owned())))
        .collect();
    assert!(
        stale.is_empty(),
        "COMPUTED lists functions that no longer need it: {stale:?}"
    );

    // The scan sees what it claims to: texts from each kind of door.
    let all: BTreeSet<&str> = found.texts.values().flatten().map(String::as_str).collect();
    for expected in [
        "an access token is required",                               // .detail("…")
        "the appointment is at version {}: reload it and try again", // .detail(format!(…))
        "this credential is not for that lab",                       // ApiError::detail(_, "…")
        "not a tube type of the catalog",                            // writes::invalid, a derived sink
        "at most {} mutations a batch",                              // FieldError::new(_, _, format!(…))
        "must hold 1 to 20 tubes",                                   // #[validate(… message = "…")]
        "must be 4 to 12 digits",                                    // rules::ensure
        "the NIR control key does not match",                        // #[error("…")]
        "invalid NIR: {}",                                           // D::Error::custom(format_args!(…))
        "length must be between {} and {}",                          // message_for, a text function
        "a tube barcode is already recorded",                        // constraint_field, a text function
        "a name search needs at least 3 letters",                    // SearchTermError::message
        "{} validation rules failed; see errors.",                   // let detail = match …
    ] {
        assert!(all.contains(expected), "the scan missed {expected:?}");
    }
}

// ------------------------------------------------------------------------------------------------
// The services.

fn in_lang(request: TestRequest, accept_language: Option<&str>) -> TestRequest {
    match accept_language {
        Some(value) => request.insert_header(("accept-language", value)),
        None => request,
    }
}

/// The same request in English (no header, `en`, a language neither) and in French (`fr`, and `fr`
/// preferred by weight): the answers differ only by their human texts. Returns (English, French).
async fn both_ways(app: &TestApp, status: u16, request: impl Fn() -> TestRequest) -> (Problem, Problem) {
    let mut english = Vec::new();
    for header in [None, Some("en"), Some("de-DE, es;q=0.8"), Some("en-GB, fr;q=0.5")] {
        let response = app.send(in_lang(request(), header)).await.expect(status);
        assert_eq!(response.header("content-language").as_deref(), Some("en"), "{header:?}");
        english.push(response.problem());
    }
    let mut french = Vec::new();
    for header in [Some("fr"), Some("fr-FR"), Some("en;q=0.4, fr-CA;q=0.9")] {
        let response: TestResponse = app.send(in_lang(request(), header)).await.expect(status);
        assert_eq!(response.header("content-language").as_deref(), Some("fr"), "{header:?}");
        let vary = response.header("vary").unwrap_or_default();
        assert!(vary.to_lowercase().contains("accept-language"), "{vary}");
        french.push(response.problem());
    }
    let (en, fr) = (english[0].clone(), french[0].clone());
    assert!(english.iter().all(|p| strip_request_id(p) == strip_request_id(&en)));
    assert!(french.iter().all(|p| strip_request_id(p) == strip_request_id(&fr)));
    // What clients branch on is the same in both languages.
    assert_eq!((&fr.r#type, fr.code, fr.status), (&en.r#type, en.code, en.status));
    let fields = |p: &Problem| {
        p.errors
            .iter()
            .map(|e| (e.pointer.clone(), e.code.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(&fr), fields(&en));
    assert_eq!(en.title, en.code.title());
    assert_ne!(fr.title, en.title);
    (en, fr)
}

fn strip_request_id(problem: &Problem) -> Problem {
    Problem {
        request_id: None,
        ..problem.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_problems_in_the_language_asked_for() {
    let gw = TestGateway::start().await;

    // A handler's refusal (the principal extractor).
    let (en, fr) = both_ways(&gw.app, 401, || TestRequest::get().uri(routes::ME)).await;
    assert_eq!(en.code, ErrorCode::InvalidToken);
    assert_eq!(en.detail.as_deref(), Some("an access token is required"));
    assert_eq!(fr.title, "Jeton d'accès invalide ou expiré");
    assert_eq!(fr.detail.as_deref(), Some("un jeton d'accès est requis"));

    // Field errors: each message translated, pointers and rule codes unchanged.
    let (en, fr) = both_ways(&gw.app, 422, || {
        TestRequest::post().uri(routes::LOGIN).set_json(json!({
            "device_id": Uuid::now_v7(), "device_secret": "short", "login": "n.dupont", "pin": "12ab"
        }))
    })
    .await;
    assert_eq!(fr.title, "Échec de la validation");
    let pin = |p: &Problem| p.errors.iter().find(|e| e.pointer == "/pin").unwrap().message.clone();
    assert_eq!(pin(&en), "must be 4 to 12 digits");
    assert_eq!(pin(&fr), "doit compter de 4 à 12 chiffres");
    assert!(fr.detail.as_deref().unwrap().contains("règles de validation"), "{fr:?}");
    let (en, fr) = both_ways(&gw.app, 422, || {
        TestRequest::post().uri(routes::LOGIN).set_json(json!({
            "device_id": Uuid::now_v7(), "device_secret": "x".repeat(20), "login": "n.dupont", "pin": "1234",
            "lab_id": "elsewhere"
        }))
    })
    .await;
    assert_eq!(en.errors[0].code, "unknown_field");
    assert!(fr.errors[0].message.starts_with("champ inconnu `lab_id`"), "{fr:?}");
    assert_eq!(fr.detail.as_deref(), Some("le corps ne respecte pas le contrat"));

    // A middleware's refusal: the VPN gate, before any route; and the 405 of a known path.
    let (en, fr) = both_ways(&gw.app, 403, || TestRequest::get().uri("/admin/v1/status")).await;
    assert_eq!(en.code, ErrorCode::PeerNotAllowed);
    assert_eq!(
        fr.detail.as_deref(),
        Some("cette adresse ne peut pas accéder à cette route")
    );
    let (_, fr) = both_ways(&gw.app, 405, || TestRequest::delete().uri(routes::ME)).await;
    assert_eq!(fr.title, "Méthode non autorisée");

    // An admin route, from the lab's network, without a session.
    let console = gw.app.from_peer(ADMIN_PEER);
    let (en, fr) = both_ways(&console, 401, || TestRequest::get().uri("/admin/v1/status")).await;
    assert_eq!(en.detail.as_deref(), Some("log in to the admin console"));
    assert_eq!(fr.title, "Identifiants invalides");
    assert_eq!(
        fr.detail.as_deref(),
        Some("connectez-vous à la console d'administration")
    );

    // The problems inside a push's verdicts follow the same header.
    let (_, tokens) = gw.nurse_tablet().await;
    let token = tokens.access_token.expose_secret().to_owned();
    let push = |lang: &str| {
        TestRequest::post()
            .uri(routes::SYNC_PUSH)
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("accept-language", lang.to_owned()))
            .set_json(json!({"mutations": [{
                "mutation_id": Uuid::now_v7(), "queued_at": "2026-01-05T09:00:00Z",
                "op": {"kind": "appointment.update", "appointment_id": Uuid::now_v7(), "if_version": 1,
                       "patch": {"status": "checked_in"}}
            }]}))
    };
    let en: serde_json::Value = gw.app.send(push("en")).await.expect(200).json();
    let fr: serde_json::Value = gw.app.send(push("fr")).await.expect(200).json();
    let (en, fr) = (&en["results"][0]["problem"], &fr["results"][0]["problem"]);
    assert_eq!(en["code"], fr["code"]);
    assert_eq!(en["title"], ErrorCode::NotFound.title());
    assert_eq!(fr["title"], "Introuvable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_answers_problems_in_the_language_asked_for() {
    let (cloud, summary) = TestCloud::seeded(10, 1).await;
    let code = summary.proximity_labs().next().unwrap().code.clone();
    let app = cloud.gateway_app(&code).await;

    let (en, fr) = both_ways(&app, 403, || {
        TestRequest::post()
            .uri("/v1/labs/CENTRAL/mutations")
            .set_json(json!({"mutations": []}))
    })
    .await;
    assert_eq!(en.detail.as_deref(), Some("this credential is not for that lab"));
    assert_eq!(fr.title, "Accès refusé");
    assert_eq!(
        fr.detail.as_deref(),
        Some("cet identifiant n'est pas celui de ce laboratoire")
    );

    let anonymous = app.clone_without_certificate();
    let (_, fr) = both_ways(&anonymous, 401, || {
        TestRequest::post()
            .uri(&format!("/v1/labs/{code}/mutations"))
            .set_json(json!({"mutations": []}))
    })
    .await;
    assert_eq!(
        fr.detail.as_deref(),
        Some("un certificat client de passerelle valide est requis")
    );

    let many: Vec<RelayedMutation> = (0..5_001)
        .map(|_| {
            let op = json!({"kind": "appointment.update", "appointment_id": Uuid::now_v7(), "if_version": 1,
                            "patch": {"status": "checked_in"}});
            relayed(Uuid::now_v7(), op)
        })
        .collect();
    let (en, fr) = both_ways(&app, 422, || {
        TestRequest::post()
            .uri(&format!("/v1/labs/{code}/mutations"))
            .set_json(json!({ "mutations": many }))
    })
    .await;
    assert_eq!(en.errors[0].message, "at most 5000 mutations a batch");
    assert_eq!(fr.errors[0].message, "au plus 5000 mutations par lot");
}
