//! Deserialization gadgets: classes that run a command, or reach out to a naming
//! service, when a serializer builds them from the request. Fastjson instantiates the
//! class a JSON value names in `@type`, Json.NET and JavaScriptSerializer the one in
//! `$type`/`__type`, XStream the one an element's `class` attribute names; the payload
//! must name one of the few classes that do harm on construction (`JdbcRowSetImpl`
//! looks its `dataSourceName` up over LDAP or RMI, `ObjectDataProvider` calls any
//! method, `ProcessBuilder` starts a process).
//!
//! Fully qualified class names are what no form, prose or API value holds: matched
//! anywhere in the value, in one pass, once the value holds a qualified name's shape
//! (a `.` then a capital: `rowset.JdbcRowSetImpl`).

use aho_corasick::AhoCorasick;
use std::sync::LazyLock;

/// Classes, or the packages of classes, that only a gadget chain names.
const GADGETS: &[&str] = &[
    // Java: JNDI lookups on construction (Fastjson, Jackson, XStream chains)
    "com.sun.rowset.JdbcRowSetImpl",
    "com.sun.jndi.",
    "com.sun.security.auth.module.JndiLoginModule",
    "javax.naming.InitialContext",
    "org.apache.shiro.jndi.",
    "org.apache.ignite.cache.jta.jndi.",
    "org.apache.xbean.propertyeditor.JndiConverter",
    "org.apache.ibatis.datasource.jndi.",
    "org.apache.commons.configuration.JNDIConfiguration",
    "org.apache.commons.proxy.provider.remoting.",
    "ch.qos.logback.core.db.JNDIConnectionSource",
    "br.com.anteros.dbcp.AnterosDBCPConfig",
    "com.zaxxer.hikari.HikariConfig",
    "com.mchange.v2.c3p0.",
    "oracle.jdbc.connector.OracleManagedConnectionFactory",
    "org.springframework.jndi.",
    // Java: code on construction or on comparison
    "com.sun.org.apache.xalan.internal.xsltc.trax.TemplatesImpl",
    "org.apache.xalan.xsltc.trax.TemplatesImpl",
    "org.apache.commons.collections.functors.",
    "org.apache.commons.collections4.functors.",
    "org.apache.commons.beanutils.BeanComparator",
    "org.codehaus.groovy.runtime.MethodClosure",
    "org.springframework.beans.factory.config.MethodInvokingFactoryBean",
    "java.lang.ProcessBuilder",
    "java.lang.Runtime",
    "java.beans.EventHandler",
    "javax.script.ScriptEngineManager",
    "javax.management.BadAttributeValueExpException",
    // the entry point of ysoserial's CommonsCollections chains
    "sun.reflect.annotation.AnnotationInvocationHandler",
    // FreeMarker's classes that `?new()` builds into a command runner
    // (`<#assign ex="freemarker.template.utility.Execute"?new()>${ex("id")}`)
    "freemarker.template.utility.Execute",
    "freemarker.template.utility.ObjectConstructor",
    "freemarker.template.utility.JythonRuntime",
    // .NET: Json.NET's and JavaScriptSerializer's `$type`/`__type` gadgets (ysoserial.net)
    "System.Windows.Data.ObjectDataProvider",
    "System.Diagnostics.Process",
    "System.Diagnostics.ProcessStartInfo",
    "System.Workflow.ComponentModel.",
    "System.Configuration.Install.AssemblyInstaller",
    "System.Activities.Presentation.WorkflowDesigner",
    "System.Windows.Markup.XamlReader",
    "System.Management.Automation.PSObject",
    "System.Security.Principal.WindowsIdentity",
    "System.Web.Security.RolePrincipal",
];

static FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build(GADGETS)
        .expect("static patterns")
});

/// Properties through which a bean path reaches the class loader (Spring4Shell's
/// `class.module.classLoader.resources...`, FreeMarker's
/// `object?api.class.protectionDomain.classLoader`, `${class.getClassLoader()}`).
const REFLECTION: &[&str] = &["classloader", "getclassloader(", "protectiondomain."];

/// Does `v` hold a qualified name's shape, a `.` then a capital letter
/// (`rowset.JdbcRowSetImpl`, `Data.ObjectDataProvider`), or a property path into the
/// class loader? Cheap, and false for most values with dots (hosts, versions, e-mail
/// addresses, sentences).
pub(crate) fn qualified_shape(v: &[u8]) -> bool {
    memchr::memchr_iter(b'.', v)
        .any(|i| v.get(i + 1).is_some_and(u8::is_ascii_uppercase) || reflection_at(&v[i + 1..]))
}

/// Does `rest` (what follows a `.`) open with one of [`REFLECTION`]?
fn reflection_at(rest: &[u8]) -> bool {
    REFLECTION
        .iter()
        .any(|r| rest.len() >= r.len() && rest[..r.len()].eq_ignore_ascii_case(r.as_bytes()))
}

/// The gadget class a value names, if any: the pattern as written above, a property
/// path into the class loader, or a JDK class in Fastjson's `@type`.
pub(super) fn named(v: &[u8]) -> Option<&'static str> {
    if !qualified_shape(v) {
        return None;
    }
    let class = FINDER.find_iter(v).find_map(|m| {
        // A package ends in `.`; a class name must end where the name does
        // (`java.lang.Runtime`, not `java.lang.RuntimeException`).
        let pat = GADGETS[m.pattern().as_usize()];
        let after = v.get(m.end());
        (pat.ends_with('.') || after.is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_'))
            .then_some(pat)
    });
    class
        .or_else(|| {
            let path = memchr::memchr_iter(b'.', v).any(|i| reflection_at(&v[i + 1..]));
            path.then_some("classLoader")
        })
        .or_else(|| autotype(v))
}

/// Fastjson's `@type` naming a class of the JDK (`{"@type":"java.net.Inet4Address",
/// "val":"x.dnslog.example"}`, its DNS probe; `java.lang.AutoCloseable`, a bypass of
/// its deny list): an application's own types are its own package's, and JSON-LD's
/// `@type` names no Java package.
fn autotype(v: &[u8]) -> Option<&'static str> {
    memchr::memmem::find_iter(v, b"\"@type\"").find_map(|i| {
        let rest = v[i + 7..].trim_ascii_start().strip_prefix(b":")?;
        let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
        ["java.", "javax.", "sun.", "com.sun."]
            .iter()
            .any(|p| rest.starts_with(p.as_bytes()))
            .then_some("fastjson @type")
    })
}

/// A serialized object that runs code as it is read: any Java serialized stream
/// (`AC ED 00 05`: as ModSecurity's CRS 944210 holds, an application that reads one from
/// a request is exploitable by whatever gadget its class path holds); a Python pickle
/// that imports a command runner (`os.system`, `subprocess`, `builtins.eval`); Ruby
/// Marshal data holding a known gadget (`Gem::Requirement`,
/// `ActiveSupport::Deprecation::DeprecatedInstanceVariableProxy`); a PHP serialized
/// object (`O:8:"Exploit":1:{...}`: CRS 933170), whose class's magic methods run.
pub(super) fn serialized(v: &[u8]) -> Option<&'static str> {
    match v {
        [0xac, 0xed, 0x00, 0x05, ..] => return Some("java serialized object"),
        // (Every pickle ends with its STOP opcode, `.`.)
        [0x80, 2..=5, ..] | [b'c' | b'(', ..] if v.ends_with(b".") && pickle_runner(v) => {
            return Some("python pickle");
        }
        [0x04, 0x08, ..] if MARSHAL.is_match(v) => return Some("ruby marshal"),
        _ => {}
    }
    // (A PHP object names its class in quotes: most values have none.)
    (memchr::memchr(b'"', v).is_some() && php_object(v)).then_some("php serialized object")
}

/// Modules and functions a pickle imports to run a command or code: `GLOBAL` as text
/// (`cos\nsystem\n`, protocols 0 to 3) or `STACK_GLOBAL` after two short strings
/// (protocol 4 and 5: `8C 02 "os" 94 8C 06 "system"`).
fn pickle_runner(v: &[u8]) -> bool {
    const ANY: &[&[u8]] = &[b"os", b"posix", b"nt", b"subprocess", b"pty", b"commands"];
    const BUILTINS: &[&[u8]] = &[b"builtins", b"__builtin__"];
    const CODE: &[&[u8]] = &[b"eval", b"exec", b"compile", b"__import__", b"getattr"];
    let runs = |module: &[u8], name: &[u8]| {
        ANY.contains(&module) || (BUILTINS.contains(&module) && CODE.contains(&name))
    };
    // Text: `c` module `\n` name `\n`.
    let text = memchr::memchr_iter(b'c', v).any(|i| {
        let rest = &v[i + 1..];
        let Some(nl) = memchr::memchr(b'\n', &rest[..rest.len().min(16)]) else {
            return false;
        };
        let name = &rest[nl + 1..];
        let name = &name[..memchr::memchr(b'\n', name).unwrap_or(name.len())];
        runs(&rest[..nl], name)
    });
    // Binary: SHORT_BINUNICODE module, MEMOIZE maybe, SHORT_BINUNICODE name.
    let short = |s: &[u8]| -> Option<(usize, usize)> {
        let (&len, rest) = s.strip_prefix(&[0x8c])?.split_first()?;
        (rest.len() >= len as usize).then_some((2, len as usize))
    };
    text || memchr::memchr_iter(0x8c, v).any(|i| {
        let Some((skip, len)) = short(&v[i..]) else {
            return false;
        };
        let module = &v[i + skip..i + skip + len];
        let mut next = i + skip + len;
        if v.get(next) == Some(&0x94) {
            next += 1;
        }
        short(&v[next..]).is_some_and(|(s, l)| runs(module, &v[next + s..next + s + l]))
    })
}

/// Ruby gadgets: classes whose methods, called as Marshal rebuilds them, reach
/// `Kernel#system` or `eval` (the universal RubyGems chain; Rails' deprecation proxy;
/// an `ERB` object's `@src`).
static MARSHAL: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::new([
        &b"Gem::Requirement"[..],
        b"Gem::Installer",
        b"Gem::SpecFetcher",
        b"Gem::RequestSet",
        b"Gem::Source::",
        b"Net::WriteAdapter",
        b"Net::BufferedIO",
        b"ActiveSupport::Deprecation::DeprecatedInstanceVariableProxy",
        b"ActiveModel::AttributeMethods::ClassMethods::CodeGenerator",
        b":\x08ERB",
    ])
    .expect("static patterns")
});

/// `O:<n>:"<Class>":<n>:{` (or `C:`, a custom-serialized class) anywhere in `v`: PHP's
/// serialized object, which `unserialize()` builds and whose `__wakeup` and
/// `__destruct` run.
fn php_object(v: &[u8]) -> bool {
    memchr::memchr_iter(b':', v).any(|i| {
        if i == 0 || !matches!(v[i - 1], b'O' | b'o' | b'C' | b'c') {
            return false;
        }
        // The letter opens the value or follows a field's end (`a:1:{i:0;O:...`).
        if i >= 2 && !matches!(v[i - 2], b'{' | b';' | b'}' | b'"' | b'\'' | b' ' | b'=') {
            return false;
        }
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let rest = &v[i + 1..];
        let n = digits(rest);
        let Some(rest) = rest[n..].strip_prefix(b":\"").filter(|_| n > 0) else {
            return false;
        };
        let name = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'\\'))
            .count();
        let Some(rest) = rest[name..].strip_prefix(b"\":").filter(|_| name > 0) else {
            return false;
        };
        let n = digits(rest);
        n > 0 && rest[n..].starts_with(b":{")
    })
}

#[cfg(test)]
mod tests {
    use super::named;

    #[test]
    fn gadget_classes() {
        for v in [
            // Fastjson 1.2.47, as a form field's JSON (nuclei's Seeyon template)
            r#"{"v47":{"@type":"java.lang.Class","val":"com.sun.rowset.JdbcRowSetImpl"}}"#,
            "com.sun.rowset.JdbcRowSetImpl",
            "org.apache.shiro.jndi.JndiObjectFactory",
            "System.Windows.Data.ObjectDataProvider, PresentationFramework, Version=4.0.0.0",
            "java.lang.ProcessBuilder",
            "com.sun.security.auth.module.JndiLoginModule required user.provider.url=\"ldap://x\"",
            "org.apache.commons.collections.functors.InvokerTransformer",
            // Spring4Shell's parameter name, FreeMarker's way to the class loader
            "class.module.classLoader.resources.context.parent.pipeline.first.pattern",
            "<#assign classloader=object?api.class.protectionDomain.classLoader>",
            "${class.getClassLoader()}",
            r#"<#assign ex="freemarker.template.utility.Execute"?new()>${ex("id")}"#,
            r#"{"@type":"java.net.Inet4Address","val":"x.dnslog.example.com"}"#,
            r#"{"@type" : "java.lang.AutoCloseable"}"#,
        ] {
            assert!(named(v.as_bytes()).is_some(), "{v}");
        }
        for v in [
            "java.lang.RuntimeException: boom",
            "the JdbcRowSetImpl class",
            "System.Diagnostics.ProcessThread",
            "www.Example.com",
            "version 1.2.3",
            r#"{"@context":"https://schema.org","@type":"Person","name":"J. Doe"}"#,
            "the class loader. It loads",
        ] {
            assert_eq!(named(v.as_bytes()), None, "{v}");
        }
    }

    #[test]
    fn serialized_objects() {
        use super::serialized;
        for (v, kind) in [
            (&b"\xac\xed\x00\x05sr\x00\x11java.util.HashMap"[..], "java serialized object"),
            (b"cos\nsystem\n(S'id'\ntR.", "python pickle"),
            (
                b"\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.",
                "python pickle",
            ),
            (
                b"\x04\x08o:@ActiveSupport::Deprecation::DeprecatedInstanceVariableProxy\x07",
                "ruby marshal",
            ),
            (br#"O:8:"Exploit":1:{s:4:"exec";s:2:"id";}"#, "php serialized object"),
            (
                br#"a:2:{i:0;O:8:"stdClass":0:{}i:1;O:8:"stdClass":0:{}}"#,
                "php serialized object",
            ),
            (
                br#"O:40:"Illuminate\Auth\RequestGuard":3:{s:11:"*callback";s:6:"system";}"#,
                "php serialized object",
            ),
        ] {
            assert_eq!(serialized(v), Some(kind), "{}", String::from_utf8_lossy(v));
        }
        for v in [
            // a pickle of a set (protocol 2 names `__builtin__.set`), Marshal's [1, 2, 3]
            &b"\x80\x02c__builtin__\nset\nq\x00]q\x01K\x01a\x85q\x02Rq\x03."[..],
            b"\x04\x08[\x08i\x06i\x07i\x08",
            // PHP arrays and prose with the letters
            br#"a:1:{s:4:"name";s:3:"Bob";}"#,
            b"ratio O:5 and C:3 in the mix",
            b"cost\nsystem\n",
        ] {
            assert_eq!(serialized(v), None, "{}", String::from_utf8_lossy(v));
        }
    }
}
