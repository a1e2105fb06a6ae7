# The one kubemail image: the operator (`kubemail manager`) and the mail server pods
# (`kubemail server`) run the same static binary, as a non-root user, on a read-only root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY mailserver/ mailserver/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /kubemail ./cmd/kubemail

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /kubemail /kubemail
# 65532 is distroless's "nonroot"; the operator's pod templates run as it too.
USER 65532:65532
ENTRYPOINT ["/kubemail"]
