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

/// Does `v` hold a qualified name's shape, a `.` then a capital letter
/// (`rowset.JdbcRowSetImpl`, `Data.ObjectDataProvider`)? Cheap, and false for most
/// values with dots (hosts, versions, e-mail addresses, sentences).
pub(crate) fn qualified_shape(v: &[u8]) -> bool {
    memchr::memchr_iter(b'.', v).any(|i| v.get(i + 1).is_some_and(u8::is_ascii_uppercase))
}

/// The gadget class a value names, if any: the pattern as written above.
pub(super) fn named(v: &[u8]) -> Option<&'static str> {
    if !qualified_shape(v) {
        return None;
    }
    FINDER.find_iter(v).find_map(|m| {
        // A package ends in `.`; a class name must end where the name does
        // (`java.lang.Runtime`, not `java.lang.RuntimeException`).
        let pat = GADGETS[m.pattern().as_usize()];
        let after = v.get(m.end());
        (pat.ends_with('.') || after.is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_'))
            .then_some(pat)
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
        ] {
            assert!(named(v.as_bytes()).is_some(), "{v}");
        }
        for v in [
            "java.lang.RuntimeException: boom",
            "the JdbcRowSetImpl class",
            "System.Diagnostics.ProcessThread",
            "www.Example.com",
            "version 1.2.3",
        ] {
            assert_eq!(named(v.as_bytes()), None, "{v}");
        }
    }
}
