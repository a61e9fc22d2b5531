//! `key=value` parameters as the command line and the HTTP API give them. Every key must be read
//! by the rule, pre-aggregator or attack it was meant for: a misspelt key is an error, not a
//! silently ignored setting.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, Clone)]
pub struct Params {
    values: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl Params {
    /// Parses `key=value` pairs; a repeated key is an error.
    pub fn parse<S: AsRef<str>>(pairs: &[S]) -> Result<Self> {
        let mut values = BTreeMap::new();
        for p in pairs {
            let p = p.as_ref();
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| Error::BadParam { key: p.to_string(), reason: "expected key=value".into() })?;
            if values.insert(k.trim().to_string(), v.trim().to_string()).is_some() {
                return Err(Error::BadParam { key: k.to_string(), reason: "given twice".into() });
            }
        }
        Ok(Params { values, read: RefCell::default() })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.read.borrow_mut().insert(key.to_string());
        self.values.get(key).map(String::as_str)
    }

    pub fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.str(key) {
            None => Ok(default),
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(bad(key, format!("{v:?} is not a finite number"))),
            },
        }
    }

    /// A finite number strictly above zero.
    pub fn positive(&self, key: &str, default: f64) -> Result<f64> {
        let x = self.f64(key, default)?;
        if x > 0.0 { Ok(x) } else { Err(bad(key, format!("must be above 0, got {x}"))) }
    }

    pub fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.str(key) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| bad(key, format!("{v:?} is not a whole number"))),
        }
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.str(key)
            .map(|v| v.parse::<usize>().map_err(|_| bad(key, format!("{v:?} is not a whole number"))))
            .transpose()
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.str(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(bad(key, format!("{v:?} is neither true nor false"))),
        }
    }

    /// Fails on a key nobody read.
    pub fn finish(&self) -> Result<()> {
        let read = self.read.borrow();
        match self.values.keys().find(|k| !read.contains(*k)) {
            None => Ok(()),
            Some(k) => {
                Err(bad(k, "not a parameter of the chosen rule, pre-aggregators or attack".to_string()))
            }
        }
    }
}

pub fn bad(key: &str, reason: String) -> Error {
    Error::BadParam { key: key.to_string(), reason }
}
