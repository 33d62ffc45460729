# shellcheck shell=bash
# Shared by hugepages.sh and bind-nic.sh: reads the few keys they need from Veil's TOML
# configuration (veild validates the file fully; this only flattens it).
# Flatten the subset of TOML Veil's config uses into "table.key=value" lines ([[port]] entries
# repeat "port.pci=..."). Strings lose their quotes; arrays stay as written (joined on one line).
toml_flat() {
  awk '
    function trim(s) { gsub(/^[ \t\r]+|[ \t\r]+$/, "", s); return s }
    function unquote(s) {
      if (s ~ /^".*"$/ || s ~ /^\047.*\047$/) s = substr(s, 2, length(s) - 2)
      return s
    }
    function strip_comment(s,   i, c, out, q) {
      out = ""; q = ""
      for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (q != "") {
          if (c == "\\" && q == "\"") { out = out c substr(s, i + 1, 1); i++; continue }
          if (c == q) q = ""
        } else if (c == "\"" || c == "\047") {
          q = c
        } else if (c == "#") {
          break
        }
        out = out c
      }
      return out
    }
    function emit(k, v,   rest, pair, eq2) {
      v = trim(v)
      # Inline tables, alone or in an array ("dataplane = { hugepages = true }",
      # "port = [{ pci = \"...\" }, ...]"): emit their simple key = value pairs under k.
      if (v ~ /^\[?[ \t]*\{/) {
        rest = v
        while (match(rest, /[A-Za-z0-9_-]+[ \t]*=[ \t]*("[^"]*"|\047[^\047]*\047|[^,}\] \t]+)/)) {
          pair = substr(rest, RSTART, RLENGTH)
          rest = substr(rest, RSTART + RLENGTH)
          eq2 = index(pair, "=")
          print k "." trim(substr(pair, 1, eq2 - 1)) "=" unquote(trim(substr(pair, eq2 + 1)))
        }
        return
      }
      print k "=" unquote(v)
    }
    {
      line = trim(strip_comment($0))
      if (line == "") next
      if (pending != "") {
        buf = buf " " line
        if (line ~ /\]/) { emit(pending, buf); pending = "" }
        next
      }
      if (line ~ /^\[\[/) { t = line; gsub(/^\[\[[ \t]*|[ \t]*\]\]$/, "", t); table = t; next }
      if (line ~ /^\[/) { t = line; gsub(/^\[[ \t]*|[ \t]*\]$/, "", t); table = t; next }
      eq = index(line, "=")
      if (!eq) next
      k = unquote(trim(substr(line, 1, eq - 1)))
      v = trim(substr(line, eq + 1))
      key = (table == "") ? k : table "." k
      if (v ~ /^\[/ && v !~ /\]/) { pending = key; buf = v; next }
      emit(key, v)
    }
  ' "$1"
}
