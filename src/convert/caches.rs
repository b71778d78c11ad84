//! Django's legacy cache URIs (`CACHE_BACKEND = "memcached://…"`) as the cache
//! dicts of Django ≥ 1.3 that Synnefo 0.19 wants (`VMAPI_CACHE`,
//! `PUBLIC_STATS_CACHE`, `VM_PASSWORD_CACHE`).
//!
//! The URI is read the way Django 1.3's `parse_backend_uri` read it:
//! `scheme://location/?query`, one trailing `/` of the location dropped, the
//! query parsed like Python 2's `parse_qsl` (`&` and `;` separate pairs,
//! `%XX` and `+` decoded, pairs without a value dropped). `timeout` becomes
//! `TIMEOUT`; `max_entries` and `cull_frequency` become the `OPTIONS`
//! `MAX_ENTRIES` and `CULL_FREQUENCY` that Django 1.7 reads; any other
//! parameter goes to `OPTIONS` as it is. Several memcached hosts
//! (`h1:p1;h2:p2`) become a `LOCATION` list. Pure functions; no I/O.

use super::python::Lit;

/// A cache, as read from a legacy URI.
#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    /// The backend class.
    pub backend: &'static str,
    /// The location: one string, or a list of memcached servers.
    pub location: Lit,
    /// `timeout=N`, when given.
    pub timeout: Option<i128>,
    /// Every other query parameter, in order.
    pub options: Vec<(String, Lit)>,
}

/// The backend class of each legacy scheme.
const SCHEMES: [(&str, &str); 5] = [
    ("locmem", "django.core.cache.backends.locmem.LocMemCache"),
    (
        "memcached",
        "django.core.cache.backends.memcached.MemcachedCache",
    ),
    (
        "file",
        "django.core.cache.backends.filebased.FileBasedCache",
    ),
    ("db", "django.core.cache.backends.db.DatabaseCache"),
    ("dummy", "django.core.cache.backends.dummy.DummyCache"),
];

/// The 0.19 default backend.
pub const LOCMEM: &str = "django.core.cache.backends.locmem.LocMemCache";

impl Cache {
    /// The 0.18.1 default, `locmem://`.
    pub fn locmem() -> Cache {
        Cache {
            backend: LOCMEM,
            location: Lit::Str(String::new()),
            timeout: None,
            options: Vec::new(),
        }
    }

    /// The dict for a 0.19 setting: `KEY_PREFIX` is `prefix`; `TIMEOUT` is
    /// `timeout` when given (the guide's value), else the URI's, else absent.
    pub fn to_dict(&self, prefix: &str, timeout: Option<Lit>) -> Lit {
        let mut entries = vec![
            ("BACKEND".to_string(), Lit::Str(self.backend.into())),
            ("LOCATION".to_string(), self.location.clone()),
            ("KEY_PREFIX".to_string(), Lit::Str(prefix.into())),
        ];
        if let Some(t) = timeout.or(self.timeout.map(Lit::Int)) {
            entries.push(("TIMEOUT".into(), t));
        }
        if !self.options.is_empty() {
            entries.push(("OPTIONS".into(), Lit::Dict(self.options.clone())));
        }
        Lit::Dict(entries)
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("'{s}' does not decode to UTF-8"))
}

/// Parses a legacy cache URI.
pub fn parse_uri(uri: &str) -> Result<Cache, String> {
    let (scheme, rest) = uri
        .split_once(':')
        .filter(|(_, rest)| rest.starts_with("//"))
        .ok_or_else(|| format!("cache URI '{uri}' does not start with scheme://"))?;
    let backend = SCHEMES
        .iter()
        .find(|(s, _)| *s == scheme)
        .map(|(_, b)| *b)
        .ok_or_else(|| {
            format!(
                "cache URI '{uri}': unknown scheme '{scheme}' (known: locmem, memcached, file, db, dummy)"
            )
        })?;
    let rest = &rest[2..];
    let (host, query) = match rest.split_once('?') {
        Some((h, q)) => (h, q),
        None => (rest, ""),
    };
    let host = host.strip_suffix('/').unwrap_or(host);
    let mut timeout = None;
    let mut options = Vec::new();
    for pair in query.split(['&', ';']) {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let (k, v) = (percent_decode(k)?, percent_decode(v)?);
        if v.is_empty() {
            continue;
        }
        let int = || {
            v.trim()
                .parse::<i128>()
                .map_err(|_| format!("cache URI '{uri}': {k}={v} is not an integer"))
        };
        match k.as_str() {
            "timeout" => timeout = Some(int()?),
            "max_entries" => options.push(("MAX_ENTRIES".to_string(), Lit::Int(int()?))),
            "cull_frequency" => options.push(("CULL_FREQUENCY".to_string(), Lit::Int(int()?))),
            _ => options.push((k.clone(), Lit::Str(v.clone()))),
        }
    }
    let location = if scheme == "memcached" && host.contains(';') {
        Lit::List(
            host.split(';')
                .filter(|h| !h.is_empty())
                .map(|h| Lit::Str(h.into()))
                .collect(),
        )
    } else {
        Lit::Str(host.into())
    };
    Ok(Cache {
        backend,
        location,
        timeout,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Lit {
        Lit::Str(v.into())
    }

    #[test]
    fn every_legacy_scheme() {
        let c = parse_uri("memcached://127.0.0.1:11211/?timeout=3600").unwrap();
        assert_eq!(
            c.backend,
            "django.core.cache.backends.memcached.MemcachedCache"
        );
        assert_eq!(c.location, s("127.0.0.1:11211"));
        assert_eq!(c.timeout, Some(3600));
        assert_eq!(parse_uri("locmem://").unwrap(), Cache::locmem());
        let f = parse_uri("file:///var/tmp/django_cache").unwrap();
        assert_eq!(
            (f.backend, f.location),
            (
                "django.core.cache.backends.filebased.FileBasedCache",
                s("/var/tmp/django_cache")
            )
        );
        let d = parse_uri("db://my_cache_table?max_entries=500&cull_frequency=4").unwrap();
        assert_eq!(d.location, s("my_cache_table"));
        assert_eq!(
            d.options,
            vec![
                ("MAX_ENTRIES".to_string(), Lit::Int(500)),
                ("CULL_FREQUENCY".to_string(), Lit::Int(4))
            ]
        );
        assert_eq!(
            parse_uri("dummy://").unwrap().backend,
            "django.core.cache.backends.dummy.DummyCache"
        );
    }

    #[test]
    fn several_memcached_hosts_and_query_decoding() {
        let c = parse_uri(
            "memcached://10.0.0.1:11211;10.0.0.2:11212/?timeout=60;x=a%20b&y=c+d&empty=&flag",
        )
        .unwrap();
        assert_eq!(
            c.location,
            Lit::List(vec![s("10.0.0.1:11211"), s("10.0.0.2:11212")])
        );
        assert_eq!(c.timeout, Some(60));
        assert_eq!(
            c.options,
            vec![("x".to_string(), s("a b")), ("y".to_string(), s("c d"))]
        );
    }

    #[test]
    fn bad_uris_are_refused() {
        assert!(parse_uri("memcached:127.0.0.1")
            .unwrap_err()
            .contains("scheme://"));
        assert!(parse_uri("redis://h:1/")
            .unwrap_err()
            .contains("unknown scheme 'redis'"));
        assert!(parse_uri("memcached://h:1/?timeout=soon")
            .unwrap_err()
            .contains("not an integer"));
        assert!(parse_uri("127.0.0.1:11211").is_err());
    }

    #[test]
    fn dicts_in_the_guides_order() {
        let c = parse_uri("memcached://h:1/?timeout=3600&tcp=1").unwrap();
        assert_eq!(
            c.to_dict("vmapi", None),
            Lit::Dict(vec![
                (
                    "BACKEND".into(),
                    s("django.core.cache.backends.memcached.MemcachedCache")
                ),
                ("LOCATION".into(), s("h:1")),
                ("KEY_PREFIX".into(), s("vmapi")),
                ("TIMEOUT".into(), Lit::Int(3600)),
                ("OPTIONS".into(), Lit::Dict(vec![("tcp".into(), s("1"))])),
            ])
        );
        let Lit::Dict(d) = c.to_dict("vmpassword", Some(Lit::None)) else {
            panic!()
        };
        assert_eq!(d[3], ("TIMEOUT".into(), Lit::None));
    }
}
