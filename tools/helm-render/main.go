// helm-render renders a Helm chart's templates with Go's text/template and the Helm and
// Sprig functions eventgate's chart uses, so the chart can be checked where the helm
// binary cannot be installed (scripts/helm-check.sh: no Debian package, PyPI or npm
// registry carries it). It is not Helm: a function the chart starts to use must be added
// here, and the check fails on an unknown one.
//
// Usage: helm-render CHART_DIR RELEASE VALUES_JSON CHART_JSON
// (values.yaml merged with any overrides, and Chart.yaml, converted to JSON by the caller;
// Go's standard library has no YAML parser).
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: helm-render CHART_DIR RELEASE VALUES_JSON CHART_JSON")
		os.Exit(2)
	}
	if err := render(os.Args[1], os.Args[2], os.Args[3], os.Args[4]); err != nil {
		fmt.Fprintln(os.Stderr, "helm-render:", err)
		os.Exit(1)
	}
}

func readJSON(path string) (map[string]interface{}, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out map[string]interface{}
	return out, json.Unmarshal(raw, &out)
}

func render(chartDir, release, valuesPath, chartPath string) error {
	values, err := readJSON(valuesPath)
	if err != nil {
		return err
	}
	chart, err := readJSON(chartPath)
	if err != nil {
		return err
	}
	// Helm exposes Chart.yaml's fields capitalised.
	chartData := map[string]interface{}{}
	for key, value := range chart {
		chartData[strings.ToUpper(key[:1])+key[1:]] = value
	}
	data := map[string]interface{}{
		"Values":  values,
		"Chart":   chartData,
		"Release": map[string]interface{}{"Name": release, "Namespace": "default", "Service": "Helm"},
	}
	root := template.New("chart").Option("missingkey=error")
	root.Funcs(funcs(root))
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if _, err := root.New(filepath.Base(file)).Parse(string(text)); err != nil {
			return err
		}
	}
	for _, file := range files {
		name := filepath.Base(file)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var out bytes.Buffer
		if err := root.ExecuteTemplate(&out, name, data); err != nil {
			return err
		}
		fmt.Printf("---\n# Source: %s\n%s\n", name, out.String())
	}
	return nil
}

func funcs(root *template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			var out bytes.Buffer
			err := root.ExecuteTemplate(&out, name, data)
			return out.String(), err
		},
		"toYaml":  func(v interface{}) string { return strings.TrimSuffix(toYAML(v, 0), "\n") },
		"indent":  func(n int, s string) string { return indent(n, s) },
		"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
		"quote":   func(v interface{}) string { return strconv.Quote(fmt.Sprint(v)) },
		"default": func(fallback, v interface{}) interface{} {
			if empty(v) {
				return fallback
			}
			return v
		},
		"required": func(message string, v interface{}) (interface{}, error) {
			if empty(v) {
				return nil, errors.New(message)
			}
			return v, nil
		},
		"trunc": func(n int, s string) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"b64enc":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"int": func(v interface{}) int {
			switch n := v.(type) {
			case float64:
				return int(n)
			case int:
				return n
			}
			return 0
		},
		"dict": func(pairs ...interface{}) (map[string]interface{}, error) {
			if len(pairs)%2 != 0 {
				return nil, errors.New("dict: an odd number of arguments")
			}
			out := map[string]interface{}{}
			for i := 0; i < len(pairs); i += 2 {
				out[fmt.Sprint(pairs[i])] = pairs[i+1]
			}
			return out, nil
		},
	}
}

func empty(v interface{}) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case float64:
		return x == 0
	case []interface{}:
		return len(x) == 0
	case map[string]interface{}:
		return len(x) == 0
	}
	return false
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if line != "" {
			lines[i] = pad + line
		}
	}
	return strings.Join(lines, "\n")
}

// toYAML writes block-style YAML; strings are JSON-quoted, which YAML reads as the same.
func toYAML(v interface{}, depth int) string {
	pad := strings.Repeat("  ", depth)
	var out strings.Builder
	switch x := v.(type) {
	case map[string]interface{}:
		if len(x) == 0 {
			return "{}\n"
		}
		keys := make([]string, 0, len(x))
		for key := range x {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			out.WriteString(pad + key + ":")
			out.WriteString(nested(x[key], depth))
		}
	case []interface{}:
		if len(x) == 0 {
			return "[]\n"
		}
		for _, item := range x {
			block := toYAML(item, depth+1)
			if isScalar(item) {
				out.WriteString(pad + "- " + block)
				continue
			}
			// The item's first line goes after the dash.
			out.WriteString(pad + "- " + strings.TrimPrefix(block, strings.Repeat("  ", depth+1)))
		}
	default:
		out.WriteString(scalar(x) + "\n")
	}
	return out.String()
}

func nested(v interface{}, depth int) string {
	if isScalar(v) || empty(v) {
		return " " + toYAML(v, 0)
	}
	return "\n" + toYAML(v, depth+1)
}

func isScalar(v interface{}) bool {
	switch v.(type) {
	case map[string]interface{}, []interface{}:
		return false
	}
	return true
}

func scalar(v interface{}) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}
