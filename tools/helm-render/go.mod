module eventgate/tools/helm-render

go 1.19
