//! The report as Markdown (for a ticket or an auditor's folder) and as a standalone
//! HTML page (no scripts, no external assets).

use std::fmt::Write;

use super::Report;

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# PCI-DSS segmentation report\n");
    let _ = writeln!(
        s,
        "Cardholder data environment: workloads matching `{}` ({} workloads; {} outside).\n",
        r.cde_selector,
        r.cde_workloads.len(),
        r.other_workloads
    );
    for w in &r.cde_workloads {
        let _ = writeln!(s, "- `{w}`");
    }
    let _ = writeln!(
        s,
        "\n## What policy allows across the boundary\n\nProved over every port of TCP, UDP and SCTP and every ICMP type (see docs/pci.md).\n"
    );
    if r.allowed.is_empty() {
        let _ = writeln!(s, "Nothing: the CDE is fully isolated.");
    } else {
        let _ = writeln!(
            s,
            "| direction | from | to | services | decided by | note |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for c in &r.allowed {
            let _ = writeln!(
                s,
                "| {} | `{}`{} | `{}`{} | {} | {} | {} |",
                c.direction,
                c.src,
                plus(c.src_workloads),
                c.dst,
                plus(c.dst_workloads),
                c.services.join(", "),
                c.rules.join("<br>"),
                if c.monitor_only {
                    "not enforced (Monitor/Discover mode)"
                } else {
                    ""
                }
            );
        }
    }
    let _ = writeln!(s, "\n## Observed flows across the boundary\n");
    if r.records_read == 0 {
        let _ = writeln!(s, "No flow records were given.");
    } else if r.observed.is_empty() {
        let _ = writeln!(s, "None in {} records.", r.records_read);
    } else {
        let _ = writeln!(s, "From {} records.\n", r.records_read);
        let _ = writeln!(
            s,
            "| direction | from | to | service | verdict | count | first | last |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for o in &r.observed {
            let _ = writeln!(
                s,
                "| {} | `{}` | `{}` | {} | {} | {} | {} | {} |",
                o.direction, o.src, o.dst, o.service, o.verdict, o.count, o.first, o.last
            );
        }
    }
    s
}

fn plus(n: usize) -> String {
    if n > 1 {
        format!(" (+{} alike)", n - 1)
    } else {
        String::new()
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(r: &Report) -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>PCI-DSS segmentation report</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #999;padding:4px 8px;text-align:left;vertical-align:top}\
         .warn{color:#a00}</style></head><body>",
    );
    let _ = write!(
        s,
        "<h1>PCI-DSS segmentation report</h1><p>Cardholder data environment: workloads matching <code>{}</code> ({} workloads; {} outside).</p><ul>",
        esc(&r.cde_selector),
        r.cde_workloads.len(),
        r.other_workloads
    );
    for w in &r.cde_workloads {
        let _ = write!(s, "<li><code>{}</code></li>", esc(w));
    }
    s.push_str("</ul><h2>What policy allows across the boundary</h2>");
    if r.allowed.is_empty() {
        s.push_str("<p>Nothing: the CDE is fully isolated.</p>");
    } else {
        s.push_str("<table><tr><th>direction</th><th>from</th><th>to</th><th>services</th><th>decided by</th><th>note</th></tr>");
        for c in &r.allowed {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}{}</td><td>{}{}</td><td>{}</td><td>{}</td><td class=\"warn\">{}</td></tr>",
                c.direction,
                esc(&c.src),
                esc(&plus(c.src_workloads)),
                esc(&c.dst),
                esc(&plus(c.dst_workloads)),
                esc(&c.services.join(", ")),
                c.rules
                    .iter()
                    .map(|x| esc(x))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                if c.monitor_only {
                    "not enforced (Monitor/Discover mode)"
                } else {
                    ""
                }
            );
        }
        s.push_str("</table>");
    }
    s.push_str("<h2>Observed flows across the boundary</h2>");
    if r.observed.is_empty() {
        let _ = write!(s, "<p>None in {} records.</p>", r.records_read);
    } else {
        s.push_str("<table><tr><th>direction</th><th>from</th><th>to</th><th>service</th><th>verdict</th><th>count</th><th>first</th><th>last</th></tr>");
        for o in &r.observed {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                o.direction,
                esc(&o.src),
                esc(&o.dst),
                esc(&o.service),
                esc(&o.verdict),
                o.count,
                esc(&o.first),
                esc(&o.last)
            );
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>\n");
    s
}
