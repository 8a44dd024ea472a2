//! The languages a problem is written in, and the French form of every text a problem carries.
//!
//! A problem's `title` comes from its [`ErrorCode`](crate::ErrorCode) ([`ErrorCode::title_in`]); its
//! `detail` and the `message` of its field errors are written in English where they are raised, and
//! their French forms live here, in one [`CATALOGUE`], looked up when the answer is written
//! ([`Problem::localized`]). `type`, `code`, `status` and the field errors' `pointer` and `code`
//! never change with the language: tablets branch on those.
//!
//! Why one catalogue rather than a French string beside each English one at the call site: the
//! texts come from many places (handlers, extractors, `validator` attributes, serde, parse errors
//! of the contract's own types), several of which cannot carry a second string. A test of the
//! integration suite (`i18n::every_problem_text_in_the_tree_has_a_french_form`) reads the sources
//! and fails on any detail or message literal that has no entry here, so that the catalogue cannot
//! fall behind the code.
//!
//! [`ErrorCode::title_in`]: crate::ErrorCode::title_in
//! [`Problem::localized`]: crate::Problem::localized

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

/// A language the services answer problems in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English, the default when a client asks for neither.
    #[default]
    En,
    /// French.
    Fr,
}

impl Lang {
    /// Every supported language, the default first.
    pub const ALL: [Self; 2] = [Self::En, Self::Fr];

    /// The language tag, as `Content-Language` gives it (`en`, `fr`).
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Fr => "fr",
        }
    }

    /// The language to answer in for an `Accept-Language` header (RFC 9110 §12.5.4): the supported
    /// language with the highest weight, a range matching by its primary subtag (`fr-CA` is `fr`)
    /// and `*` standing for any language not named; between equal weights, the one named first.
    /// English when the header is absent, unreadable or accepts neither.
    pub fn negotiate(accept_language: Option<&str>) -> Self {
        let Some(header) = accept_language else {
            return Self::En;
        };
        // (weight, position) of each language, named explicitly or through `*`.
        let mut named: [Option<(u16, usize)>; 2] = [None, None];
        let mut wildcard: Option<(u16, usize)> = None;
        for (position, item) in header.split(',').enumerate() {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(parse_weight)
                .unwrap_or(1000);
            let primary = range.split('-').next().unwrap_or("");
            if range == "*" {
                wildcard.get_or_insert((weight, position));
                continue;
            }
            for (slot, lang) in named.iter_mut().zip(Self::ALL) {
                if primary.eq_ignore_ascii_case(lang.tag()) {
                    // The most specific range wins in RFC 4647; for a primary subtag, the first.
                    slot.get_or_insert((weight, position));
                }
            }
        }
        let mut best = (Self::En, 0u16, usize::MAX);
        for (slot, lang) in named.iter().zip(Self::ALL) {
            // A language not named takes the wildcard's weight, after every named one.
            let Some((weight, position)) = slot.or(wildcard.map(|(w, _)| (w, usize::MAX - 1))) else {
                continue;
            };
            if weight > best.1 || (weight == best.1 && weight > 0 && position < best.2) {
                best = (lang, weight, position);
            }
        }
        best.0
    }
}

/// A weight (`q=0.8`) in thousandths, or `None` when it is not one.
fn parse_weight(text: &str) -> Option<u16> {
    let text = text.trim();
    let (units, decimals) = text.split_once('.').unwrap_or((text, ""));
    if decimals.len() > 3 || !decimals.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = match units {
        "0" => decimals
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
        "1" if decimals.bytes().all(|b| b == b'0') => 1000,
        _ => return None,
    };
    Some(value)
}

/// `text` in `lang`: itself in English; in French, its catalogue form, or itself when the catalogue
/// has none (the source scan keeps that from happening to a text written in this tree).
pub fn translate(text: &str, lang: Lang) -> Cow<'_, str> {
    match lang {
        Lang::En => Cow::Borrowed(text),
        Lang::Fr => french(text).map_or(Cow::Borrowed(text), Cow::Owned),
    }
}

/// The French form of an English problem text, if the catalogue has one.
///
/// A text is looked up whole first, then against the patterns, whose `{}` stand for a part of the
/// text kept as it is (a number, a field name, a position) unless that part has a French form of its
/// own (`invalid NIR: {}` holds the NIR rule that failed). When several patterns match, the one with
/// the most fixed text wins (`must be at most {} characters` before `must be at most {}`).
pub fn french(text: &str) -> Option<String> {
    if let Some(fr) = CATALOGUE_INDEX.exact.get(text) {
        return Some((*fr).to_owned());
    }
    CATALOGUE_INDEX
        .patterns
        .iter()
        .filter_map(|(en, fr)| Some((captures(en, text)?, *fr)))
        .next()
        .map(|(parts, fr)| {
            let mut out = String::with_capacity(fr.len() + text.len());
            let mut parts = parts.into_iter();
            let mut pieces = fr.split("{}");
            out.push_str(pieces.next().unwrap_or(""));
            for piece in pieces {
                let part = parts.next().unwrap_or("");
                match french(part) {
                    Some(translated) => out.push_str(&translated),
                    None => out.push_str(part),
                }
                out.push_str(piece);
            }
            out
        })
}

/// The parts of `text` that the `{}` of `pattern` stand for, or `None` when it does not match.
/// Each part is at least one character, and ends at the first place the pattern's next fixed text
/// follows.
fn captures<'t>(pattern: &str, text: &'t str) -> Option<Vec<&'t str>> {
    let mut pieces = pattern.split("{}");
    let first = pieces.next().unwrap_or("");
    let mut rest = text.strip_prefix(first)?;
    let pieces: Vec<&str> = pieces.collect();
    let mut parts = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let end = if last {
            if !rest.ends_with(piece) || rest.len() <= piece.len() {
                return None;
            }
            rest.len() - piece.len()
        } else if piece.is_empty() {
            return None;
        } else {
            // Skip one character so that a part is never empty.
            let start = rest.chars().next()?.len_utf8();
            start + rest[start..].find(piece)?
        };
        parts.push(&rest[..end]);
        rest = &rest[end + piece.len()..];
    }
    rest.is_empty().then_some(parts)
}

struct Index {
    exact: HashMap<&'static str, &'static str>,
    /// The entries with a `{}`, the most fixed text first.
    patterns: Vec<(&'static str, &'static str)>,
}

static CATALOGUE_INDEX: LazyLock<Index> = LazyLock::new(|| {
    let (patterns, exact): (Vec<_>, Vec<_>) = CATALOGUE.iter().copied().partition(|(en, _)| en.contains("{}"));
    let mut patterns = patterns;
    patterns.sort_by_key(|(en, _)| std::cmp::Reverse(en.replace("{}", "").len()));
    Index {
        exact: exact.into_iter().collect(),
        patterns,
    }
});

/// English → French, for every detail and field-error message the services write. `{}` stands for
/// a part copied (or translated on its own) from the English text, in the same order.
///
/// Grouped by where the texts are raised; the source scan names the file of a missing one.
pub const CATALOGUE: &[(&str, &str)] = &[
    // --- labedge-service: the body and query extractors (service/src/http.rs) ---
    (
        "the request body arrived too slowly",
        "le corps de la requête est arrivé trop lentement",
    ),
    (
        "the request body could not be read",
        "le corps de la requête n'a pas pu être lu",
    ),
    (
        "the body must be application/json",
        "le corps doit être en application/json",
    ),
    ("the body is larger than {} bytes", "le corps dépasse {} octets"),
    (
        "the body is not valid JSON (line {}, column {})",
        "le corps n'est pas du JSON valide (ligne {}, colonne {})",
    ),
    (
        "the body does not match the contract",
        "le corps ne respecte pas le contrat",
    ),
    (
        "the query string does not match the contract",
        "les paramètres de la requête ne respectent pas le contrat",
    ),
    // serde's messages, with the submitted values already replaced by `(value)`; serde's own words
    // for the expected type (`a string`, `u32`) stay as serde writes them.
    ("(value)", "(valeur)"),
    (
        "unknown field `{}`, expected one of {}",
        "champ inconnu `{}`, attendu : l'un de {}",
    ),
    ("unknown field `{}`, expected {}", "champ inconnu `{}`, attendu : {}"),
    (
        "unknown field `{}`, there are no fields",
        "champ inconnu `{}` : aucun champ n'est attendu",
    ),
    ("missing field `{}`", "champ manquant `{}`"),
    ("duplicate field `{}`", "champ en double `{}`"),
    ("invalid type: {}, expected {}", "type invalide : {}, attendu : {}"),
    ("invalid value: {}, expected {}", "valeur invalide : {}, attendu : {}"),
    ("invalid length {}, expected {}", "longueur invalide {}, attendu : {}"),
    (
        "unknown variant {}, expected one of {}",
        "variante inconnue {}, attendu : l'un de {}",
    ),
    ("unknown variant {}, expected {}", "variante inconnue {}, attendu : {}"),
    (
        "unknown variant {}, there are no variants",
        "variante inconnue {} : aucune n'est attendue",
    ),
    ("Query deserialize error: {}", "paramètres illisibles : {}"),
    (
        "invalid digit found in string",
        "caractère non numérique dans le nombre",
    ),
    ("cannot parse integer from empty string", "nombre vide"),
    ("number too large to fit in target type", "nombre trop grand"),
    ("number too small to fit in target type", "nombre trop petit"),
    (
        "provided string was not `true` or `false`",
        "la valeur n'est ni `true` ni `false`",
    ),
    // --- labedge-service: database errors (service/src/error.rs) ---
    (
        "the database is unavailable; retry shortly",
        "la base de données est indisponible ; réessayez dans un instant",
    ),
    (
        "the database is read-only; retry shortly",
        "la base de données est en lecture seule ; réessayez dans un instant",
    ),
    (
        "the database connection was lost; retry shortly",
        "la connexion à la base de données a été perdue ; réessayez dans un instant",
    ),
    (
        "a concurrent change got in the way; retry",
        "une modification concurrente a interféré ; réessayez",
    ),
    (
        "a tube barcode is already recorded",
        "un code-barres de tube est déjà enregistré",
    ),
    (
        "required when identity_checked is true",
        "obligatoire quand identity_checked vaut true",
    ),
    (
        "this login is already taken in this lab",
        "cet identifiant est déjà pris dans ce laboratoire",
    ),
    (
        "lab codes are unique, 2 to 16 of A-Z, 0-9 and '-'",
        "les codes de laboratoire sont uniques, de 2 à 16 caractères parmi A-Z, 0-9 et '-'",
    ),
    ("not a NIR", "ce n'est pas un NIR"),
    // --- mobile-contracts: problems built from validation and parse errors (problem.rs) ---
    (
        "1 validation rule failed; see errors.",
        "1 règle de validation n'est pas respectée ; voir errors.",
    ),
    (
        "{} validation rules failed; see errors.",
        "{} règles de validation ne sont pas respectées ; voir errors.",
    ),
    (
        "The body does not match the schema of this route ({}): a value has the wrong type or format.",
        "Le corps ne respecte pas le schéma de cette route ({}) : une valeur n'a pas le type ou le format attendu.",
    ),
    (
        "The body ends before the JSON document does ({}).",
        "Le corps s'arrête avant la fin du document JSON ({}).",
    ),
    (
        "The body is not valid JSON ({}).",
        "Le corps n'est pas du JSON valide ({}).",
    ),
    ("line {}, column {}", "ligne {}, colonne {}"),
    ("length must be exactly {}", "la longueur doit être exactement {}"),
    (
        "length must be between {} and {}",
        "la longueur doit être comprise entre {} et {}",
    ),
    ("length must be at least {}", "la longueur doit être d'au moins {}"),
    ("length must be at most {}", "la longueur doit être d'au plus {}"),
    ("length is out of bounds", "la longueur est hors des bornes"),
    ("must be between {} and {}", "doit être compris entre {} et {}"),
    ("must be at least {}", "doit valoir au moins {}"),
    ("must be at most {}", "doit valoir au plus {}"),
    ("is out of range", "est hors de l'intervalle permis"),
    ("is required", "est obligatoire"),
    (
        "must not contain control characters",
        "ne doit pas contenir de caractères de contrôle",
    ),
    ("must be an e-mail address", "doit être une adresse e-mail"),
    ("must be a URL", "doit être une URL"),
    ("is invalid", "est invalide"),
    // --- mobile-contracts: the request types' rules (rules.rs, collections.rs, sync.rs, …) ---
    ("must not be the nil UUID", "ne doit pas être l'UUID nul"),
    (
        "must be 3 to 32 characters among a-z, 0-9, '.', '_' and '-'",
        "doit compter de 3 à 32 caractères parmi a-z, 0-9, '.', '_' et '-'",
    ),
    ("must be 4 to 12 digits", "doit compter de 4 à 12 chiffres"),
    (
        "must be 16 to 128 printable ASCII characters",
        "doit compter de 16 à 128 caractères ASCII imprimables",
    ),
    (
        "must be 1 to 512 printable ASCII characters",
        "doit compter de 1 à 512 caractères ASCII imprimables",
    ),
    (
        "must be 6 to 12 characters among A-Z and 2-9",
        "doit compter de 6 à 12 caractères parmi A-Z et 2-9",
    ),
    (
        "must be 2 to 24 characters among A-Z, 0-9 and '_'",
        "doit compter de 2 à 24 caractères parmi A-Z, 0-9 et '_'",
    ),
    (
        "must not contain control characters other than line breaks and tabs",
        "ne doit pas contenir de caractères de contrôle autres que les sauts de ligne et les tabulations",
    ),
    ("must be at most {} characters", "doit compter au plus {} caractères"),
    ("must be {} to {} characters", "doit compter de {} à {} caractères"),
    ("must use only A-Z, 0-9 and '-'", "ne doit utiliser que A-Z, 0-9 et '-'"),
    (
        "a tube barcode has 8 to 20 characters, found {}",
        "un code-barres de tube compte de 8 à 20 caractères, trouvé : {}",
    ),
    (
        "a tube barcode holds only A-Z, 0-9 and '-'",
        "un code-barres de tube ne contient que A-Z, 0-9 et '-'",
    ),
    (
        "is already used by an earlier tube of this collection",
        "est déjà utilisé par un tube précédent de ce prélèvement",
    ),
    (
        "is required when identity_checked is true",
        "est obligatoire quand identity_checked vaut true",
    ),
    (
        "must be absent when identity_checked is false",
        "doit être absent quand identity_checked vaut false",
    ),
    (
        "must be a PEM certificate request of at most 8192 bytes",
        "doit être une demande de certificat PEM d'au plus 8192 octets",
    ),
    (
        "a NIR search must be a valid NIR: {}",
        "une recherche par NIR demande un NIR valide : {}",
    ),
    ("must hold 1 to 20 tubes", "doit contenir de 1 à 20 tubes"),
    ("must hold 1 to 500 mutations", "doit contenir de 1 à 500 mutations"),
    (
        "is already used by an earlier mutation of this batch",
        "est déjà utilisé par une mutation précédente de ce lot",
    ),
    ("must be {} or more", "doit valoir {} ou plus"),
    ("must be a key of the table", "doit être une clé de la table"),
    (
        "expected a date formatted as YYYY-MM-DD",
        "date attendue au format AAAA-MM-JJ",
    ),
    ("invalid NIR: {}", "NIR invalide : {}"),
    (
        "a NIR has 15 characters (13 plus a 2-digit key), found {}",
        "un NIR compte 15 caractères (13 plus une clé de 2 chiffres), trouvé : {}",
    ),
    (
        "a NIR holds only digits, apart from 2A or 2B as the department",
        "un NIR ne contient que des chiffres, hormis 2A ou 2B pour le département",
    ),
    (
        "the department (characters 6 and 7) must be two digits, 2A or 2B",
        "le département (caractères 6 et 7) doit être deux chiffres, 2A ou 2B",
    ),
    (
        "the first digit of a NIR must be 1, 2, 3, 4, 7 or 8",
        "le premier chiffre d'un NIR doit être 1, 2, 3, 4, 7 ou 8",
    ),
    (
        "the month (characters 4 and 5) must be 01 to 12, 20 to 42 or 50 to 99",
        "le mois (caractères 4 et 5) doit être de 01 à 12, de 20 à 42 ou de 50 à 99",
    ),
    (
        "the NIR control key does not match",
        "la clé de contrôle du NIR ne correspond pas",
    ),
    ("the search term is empty", "le terme de recherche est vide"),
    (
        "a name search needs at least 3 letters",
        "une recherche par nom demande au moins 3 lettres",
    ),
    (
        "the search term contains control characters",
        "le terme de recherche contient des caractères de contrôle",
    ),
    (
        "a date search must be a valid YYYY-MM-DD or DD/MM/YYYY date",
        "une recherche par date demande une date valide AAAA-MM-JJ ou JJ/MM/AAAA",
    ),
    (
        "a search starting with a digit must be a valid NIR or date",
        "une recherche commençant par un chiffre doit être un NIR ou une date valide",
    ),
    // --- the edge gateway: authentication (edge-gateway/src/auth/) ---
    (
        "the device credentials, login or PIN were not recognised",
        "les identifiants de la tablette, le login ou le code PIN n'ont pas été reconnus",
    ),
    (
        "the session is older than the offline grace bound: log in with the PIN again",
        "la session dépasse le délai de grâce hors ligne : reconnectez-vous avec le code PIN",
    ),
    (
        "too many failed attempts: try again later",
        "trop de tentatives échouées : réessayez plus tard",
    ),
    (
        "the enrollment code is unknown, used or expired: ask the lab admin for a new one",
        "le code d'enrôlement est inconnu, déjà utilisé ou expiré : demandez-en un nouveau à l'administrateur du laboratoire",
    ),
    (
        "not a certificate signing request this gateway can sign",
        "ce n'est pas une demande de signature de certificat que cette passerelle peut signer",
    ),
    (
        "your role does not give access to this",
        "votre rôle ne donne pas accès à cette ressource",
    ),
    (
        "this device has been revoked: erase the data it holds and enroll it again",
        "cette tablette a été révoquée : effacez les données qu'elle contient et enrôlez-la à nouveau",
    ),
    (
        "credentials cannot be checked right now",
        "les identifiants ne peuvent pas être vérifiés pour le moment",
    ),
    ("an access token is required", "un jeton d'accès est requis"),
    (
        "tablet tokens are not accepted on admin routes",
        "les jetons des tablettes ne sont pas acceptés sur les routes d'administration",
    ),
    (
        "log in to the admin console",
        "connectez-vous à la console d'administration",
    ),
    (
        "the admin session is unknown or over: log in again",
        "la session d'administration est inconnue ou terminée : reconnectez-vous",
    ),
    ("missing or wrong X-CSRF-Token", "X-CSRF-Token absent ou erroné"),
    (
        "must differ from the current PIN",
        "doit être différent du code PIN actuel",
    ),
    ("is not your current PIN", "n'est pas votre code PIN actuel"),
    (
        "the device credentials, login or reset code were not recognised, or the code is used or expired",
        "les identifiants de la tablette, le login ou le code de réinitialisation n'ont pas été reconnus, ou le code est déjà utilisé ou expiré",
    ),
    (
        "this staff member is deactivated: reactivate them first",
        "ce membre du personnel est désactivé : réactivez-le d'abord",
    ),
    (
        "a lab admin cannot deactivate themselves: ask another lab admin",
        "un administrateur du laboratoire ne peut pas se désactiver lui-même : demandez à un autre administrateur",
    ),
    // --- the edge gateway: routes, reads and writes ---
    (
        "the cursor was not issued by this gateway; pull without a cursor to start again",
        "ce curseur n'a pas été émis par cette passerelle ; relancez la synchronisation sans curseur",
    ),
    (
        "is not a cursor issued by this gateway",
        "n'est pas un curseur émis par cette passerelle",
    ),
    (
        "this gateway has not received its lab's data from the cloud yet",
        "cette passerelle n'a pas encore reçu les données de son laboratoire depuis le cloud",
    ),
    (
        "the path percent-encodes a character that needs no encoding",
        "le chemin encode en pourcentage un caractère qui n'en a pas besoin",
    ),
    (
        "this address may not reach this route",
        "cette adresse ne peut pas accéder à cette route",
    ),
    (
        "the appointment is at version {}: reload it and try again",
        "le rendez-vous est à la version {} : rechargez-le puis réessayez",
    ),
    (
        "this status change is not allowed from the appointment's current status",
        "ce changement de statut n'est pas permis depuis le statut actuel du rendez-vous",
    ),
    (
        "a different collection with this id is already recorded",
        "un autre prélèvement avec cet identifiant est déjà enregistré",
    ),
    ("already recorded", "déjà enregistré"),
    (
        "is in the future: check the tablet's clock",
        "est dans le futur : vérifiez l'horloge de la tablette",
    ),
    (
        "is before the prescription was issued: check the tablet's clock",
        "est antérieur à l'émission de la prescription : vérifiez l'horloge de la tablette",
    ),
    (
        "not a prescription of this patient at this lab",
        "ce n'est pas une prescription de ce patient dans ce laboratoire",
    ),
    (
        "not an appointment of this patient at this lab",
        "ce n'est pas un rendez-vous de ce patient dans ce laboratoire",
    ),
    (
        "not a tube type of the catalog",
        "ce n'est pas un type de tube du catalogue",
    ),
    (
        "no such patient among yours",
        "aucun patient de ce type parmi les vôtres",
    ),
    (
        "the access could not be recorded in the audit log; retry shortly",
        "l'accès n'a pas pu être inscrit au journal d'audit ; réessayez dans un instant",
    ),
    ("this was already handled", "cela a déjà été traité"),
    (
        "a write with this Idempotency-Key is being recorded: retry in a moment",
        "une écriture avec cette Idempotency-Key est en cours d'enregistrement : réessayez dans un instant",
    ),
    (
        "this Idempotency-Key was used for another request: make a new key per write",
        "cette Idempotency-Key a servi à une autre requête : créez une nouvelle clé pour chaque écriture",
    ),
    (
        "must be a name prefix, a birth date or a NIR",
        "doit être un début de nom, une date de naissance ou un NIR",
    ),
    (
        "every write carries an Idempotency-Key header (a UUID the tablet makes per write)",
        "chaque écriture porte un en-tête Idempotency-Key (un UUID créé par la tablette pour chaque écriture)",
    ),
    (
        "the Idempotency-Key header is malformed",
        "l'en-tête Idempotency-Key est mal formé",
    ),
    (
        "send If-Match with the version of the appointment you changed",
        "envoyez If-Match avec la version du rendez-vous que vous avez modifié",
    ),
    (
        "If-Match must be an appointment version such as \"3\"",
        "If-Match doit être une version de rendez-vous, par exemple \"3\"",
    ),
    // --- the cloud API ---
    (
        "a central IT token is required",
        "un jeton de la DSI centrale est requis",
    ),
    (
        "this address may not read the metrics",
        "cette adresse ne peut pas lire les métriques",
    ),
    (
        "a valid gateway client certificate is required",
        "un certificat client de passerelle valide est requis",
    ),
    (
        "this credential is not for that lab",
        "cet identifiant n'est pas celui de ce laboratoire",
    ),
    ("at most {} mutations a batch", "au plus {} mutations par lot"),
    ("at most {} ids a request", "au plus {} identifiants par requête"),
    (
        "must be two lower-case hex digits",
        "doit être deux chiffres hexadécimaux en minuscules",
    ),
    ("not a replicated table", "ce n'est pas une table répliquée"),
    // --- the desk (issue 15): booking, walk-ins, voids (edge-gateway/src/writes, mobile-contracts) ---
    ("is in the past", "est dans le passé"),
    (
        "is not the start of a slot of the lab's hours: take one from GET /v1/slots",
        "n'est pas le début d'un créneau des horaires du laboratoire : prenez-en un de GET /v1/slots",
    ),
    (
        "is beyond the days whose appointments this gateway holds: book it through the central lab",
        "est au-delà des jours dont cette passerelle détient les rendez-vous : réservez par le laboratoire central",
    ),
    (
        "this gateway has not received its lab's appointments from the cloud yet",
        "cette passerelle n'a pas encore reçu les rendez-vous de son laboratoire depuis le cloud",
    ),
    ("is the appointment's current start", "est déjà l'heure du rendez-vous"),
    (
        "only a scheduled appointment can be moved to another slot",
        "seul un rendez-vous planifié peut être déplacé sur un autre créneau",
    ),
    ("no such patient at this lab", "patient inconnu dans ce laboratoire"),
    ("already used", "déjà utilisé"),
    (
        "another appointment already has this id",
        "un autre rendez-vous porte déjà cet identifiant",
    ),
    ("no free place in this slot", "plus de place libre sur ce créneau"),
    (
        "this slot has no free place left: choose one of next_slots",
        "ce créneau est complet : choisissez l'un des créneaux de next_slots",
    ),
    (
        "a home visit needs an address and the patient has none on record",
        "une visite à domicile demande une adresse et le patient n'en a aucune au dossier",
    ),
    (
        "a lab visit takes no address or access notes",
        "une visite au laboratoire ne prend ni adresse ni indications d'accès",
    ),
    ("this collection is already voided", "ce prélèvement est déjà annulé"),
    (
        "a patient with this NIR is already registered: search for them instead",
        "un patient porte déjà ce NIR : recherchez-le plutôt",
    ),
    ("already a patient's", "déjà celui d'un patient"),
    (
        "probable duplicates of this patient exist: check each, then send again with their ids in confirmed_distinct_from if none is the patient",
        "des doublons probables de ce patient existent : vérifiez chacun, puis renvoyez la demande avec leurs identifiants dans confirmed_distinct_from si aucun n'est le patient",
    ),
    (
        "another patient already has this id",
        "un autre patient porte déjà cet identifiant",
    ),
    ("the postal code has 5 characters", "le code postal a 5 caractères"),
    (
        "must be an INSEE code: 5 characters, 2A/2B for Corsica, 99xxx abroad",
        "doit être un code INSEE : 5 caractères, 2A/2B pour la Corse, 99xxx à l'étranger",
    ),
    (
        "must be 1 to 100 letters, spaces, hyphens or apostrophes",
        "doit compter de 1 à 100 lettres, espaces, traits d'union ou apostrophes",
    ),
    ("is not a NIR with a valid key", "n'est pas un NIR à la clé valide"),
    (
        "its birth year does not match the birth date",
        "son année de naissance ne correspond pas à la date de naissance",
    ),
    (
        "its first digit does not match the sex",
        "son premier chiffre ne correspond pas au sexe",
    ),
    ("must be 8 to 15 digits", "doit compter de 8 à 15 chiffres"),
    (
        "must be a date between 1890 and today",
        "doit être une date entre 1890 et aujourd'hui",
    ),
    ("must list at most 50 patients", "doit citer au plus 50 patients"),
    // --- paper prescriptions (edge-gateway/src/routes and writes/paper_prescriptions.rs, mobile-contracts) ---
    (
        "the body must be multipart/form-data with the parts `prescription` and `file`",
        "le corps doit être multipart/form-data avec les parties `prescription` et `file`",
    ),
    (
        "the multipart body is malformed or incomplete",
        "le corps multipart est mal formé ou incomplet",
    ),
    ("missing", "absent"),
    ("the `{}` part is missing", "la partie `{}` est absente"),
    ("JPEG, PNG or PDF only", "JPEG, PNG ou PDF uniquement"),
    (
        "a part is repeated: send one `prescription` and one `file`",
        "une partie est répétée : envoyez une seule `prescription` et un seul `file`",
    ),
    (
        "the `prescription` part is over 16 KiB",
        "la partie `prescription` dépasse 16 Kio",
    ),
    ("the file is empty", "le fichier est vide"),
    (
        "the file is not a JPEG, PNG or PDF (its type is read from its bytes)",
        "le fichier n'est ni un JPEG, ni un PNG, ni un PDF (son type est lu dans ses octets)",
    ),
    (
        "unexpected part: send exactly `prescription` (JSON) and `file`",
        "partie inattendue : envoyez exactement `prescription` (JSON) et `file`",
    ),
    ("the file is over 10 MiB", "le fichier dépasse 10 Mio"),
    (
        "another paper prescription already has this id",
        "une autre ordonnance papier porte déjà cet identifiant",
    ),
    ("not a patient of this lab", "pas un patient de ce laboratoire"),
    ("11 digits", "11 chiffres"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_heaviest_supported_language() {
        let cases = [
            (None, Lang::En),
            (Some(""), Lang::En),
            (Some("fr"), Lang::Fr),
            (Some("FR-fr"), Lang::Fr),
            (Some("fr-CA, en;q=0.5"), Lang::Fr),
            (Some("en-GB,en;q=0.9,fr;q=0.8"), Lang::En),
            (Some("de-DE, fr;q=0.7, en;q=0.3"), Lang::Fr),
            (Some("de, es"), Lang::En),
            (Some("en;q=0.2, fr;q=0.9"), Lang::Fr),
            (Some("fr;q=0, en;q=0.1"), Lang::En),
            (Some("fr;q=0"), Lang::En),
            (Some("en;q=0, fr;q=0"), Lang::En),
            (Some("fr, en"), Lang::Fr),
            (Some("en, fr"), Lang::En),
            (Some("*"), Lang::En),
            (Some("en;q=0, *;q=0.5"), Lang::Fr),
            (Some("fr;q=0.4, *"), Lang::En),
            (Some("fr;q=1.0"), Lang::Fr),
            (Some("fr;q=2, en;q=0.1"), Lang::Fr),
            (Some("fr;q=abc"), Lang::Fr),
            (Some(",,;;q=,fr-"), Lang::Fr),
            (Some("français"), Lang::En),
        ];
        for (header, expected) in cases {
            assert_eq!(Lang::negotiate(header), expected, "{header:?}");
        }
    }

    #[test]
    fn weights_parse_as_rfc_9110_writes_them() {
        assert_eq!(parse_weight("1"), Some(1000));
        assert_eq!(parse_weight("1.000"), Some(1000));
        assert_eq!(parse_weight("0.5"), Some(500));
        assert_eq!(parse_weight("0.05"), Some(50));
        assert_eq!(parse_weight("0"), Some(0));
        assert_eq!(parse_weight("0.0001"), None);
        assert_eq!(parse_weight("1.5"), None);
        assert_eq!(parse_weight("-1"), None);
    }

    #[test]
    fn texts_are_found_whole_then_by_pattern_and_parts_translated_on_their_own() {
        assert_eq!(french("is required").as_deref(), Some("est obligatoire"));
        assert_eq!(
            french("length must be between 8 and 20").as_deref(),
            Some("la longueur doit être comprise entre 8 et 20")
        );
        assert_eq!(
            french("must be at most 128 characters").as_deref(),
            Some("doit compter au plus 128 caractères"),
            "the pattern with the most fixed text wins"
        );
        assert_eq!(french("must be at most 50").as_deref(), Some("doit valoir au plus 50"));
        assert_eq!(
            french("invalid NIR: the NIR control key does not match").as_deref(),
            Some("NIR invalide : la clé de contrôle du NIR ne correspond pas")
        );
        assert_eq!(
            french("unknown field `lab_id`, expected one of `id`, `patient_id`").as_deref(),
            Some("champ inconnu `lab_id`, attendu : l'un de `id`, `patient_id`")
        );
        assert_eq!(
            french("invalid type: (value), expected u32").as_deref(),
            Some("type invalide : (valeur), attendu : u32")
        );
        assert_eq!(
            french("The body is not valid JSON (line 1, column 7).").as_deref(),
            Some("Le corps n'est pas du JSON valide (ligne 1, colonne 7).")
        );
        assert_eq!(french("no French for this"), None);
        assert_eq!(french(""), None);
        assert_eq!(french("must be at most "), None, "a part is never empty");
        assert_eq!(translate("is required", Lang::En), "is required");
        assert_eq!(translate("no French for this", Lang::Fr), "no French for this");
    }

    #[test]
    fn the_catalogue_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for (en, fr) in CATALOGUE {
            assert!(seen.insert(*en), "{en:?} is in the catalogue twice");
            assert_eq!(en.matches("{}").count(), fr.matches("{}").count(), "{en:?}");
            assert_ne!(en, fr, "{en:?} is not translated");
            // A pattern of placeholders and punctuation alone would pass any text as translated.
            let fixed = en.replace("{}", "");
            assert!(fixed.chars().filter(|c| c.is_alphabetic()).count() >= 4, "{en:?}");
            assert!(
                !en.contains("{}{}"),
                "{en:?}: two parts side by side cannot be told apart"
            );
            // Every pattern matches its own English form (with words for its parts).
            if en.contains("{}") {
                let sample = en.replace("{}", "x1");
                assert!(french(&sample).is_some(), "{en:?}");
            }
        }
    }
}
