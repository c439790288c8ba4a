"""A stand-in for a cloud registry's management API, checking signatures with the vendor's
own code, beside a real registry (tests/it/support/cloud.rs puts a gate in front of it
that asks this server about every registry request, at /_standin/gate).

--vendor swr: Huawei SWR's API. Each request's APIG signature (SDK-HMAC-SHA256) is
  recomputed with huaweicloudsdkcore's Signer; an unknown AK, a missing or stale
  X-Sdk-Date or a wrong signature is refused with 401 APIGW.0301, as API Gateway does.
  GET /v2/manage/repos (namespace, offset, limit; Content-Range), GET and POST
  /v2/manage/namespaces. The registry gate wants Basic '<region>@<AK>' with the login key
  hex(HMAC-SHA256(SK, AK)), and refuses pushes into organizations that do not exist.

--vendor ecr: Amazon ECR's API (JSON 1.1, X-Amz-Target). Each request's SigV4 signature
  is recomputed with botocore's SigV4Auth over the headers it names; a wrong one is
  refused with 403 InvalidSignatureException, an unknown key with
  UnrecognizedClientException, as AWS does. DescribeRepositories (nextToken pages, or
  repositoryNames), CreateRepository (RepositoryAlreadyExistsException),
  GetAuthorizationToken (a new password each time, as base64 'AWS:<password>'; the first
  --stale-tokens of them are already expired). The registry gate wants Basic
  'AWS:<password>' with a password it issued and that has not expired (--password is one
  issued before the run, as `aws ecr get-login-password` gives), and answers NAME_UNKNOWN for
  repositories not created.

Prints 'listening <port>' on stdout once it answers. /_standin/state tells the test
what exists and which API calls were made.
"""
import argparse
import datetime
import hashlib
import hmac
import json
import sys
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

LOCK = threading.Lock()


class State:
    def __init__(self, args):
        self.args = args
        self.containers = set(filter(None, args.containers.split(",")))
        self.calls = []
        # ECR: the registry passwords that are valid now, and how many were issued.
        self.passwords = {args.password} if args.password else set()
        self.issued = 0


def catalog(registry):
    with urllib.request.urlopen("http://%s/v2/_catalog?n=1000" % registry) as r:
        return json.load(r)["repositories"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *args):
        pass

    def answer(self, status, body=None, headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return status

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        parsed = urllib.parse.urlsplit(self.path)
        body = self.body()
        if parsed.path.startswith("/_standin/"):
            return self.standin(parsed.path, body)
        status = (swr if self.state.args.vendor == "swr" else ecr)(self, parsed, body)
        path = self.path
        if self.state.args.vendor == "ecr":
            # One URL for every action: the action names the call.
            path += "#" + (self.headers.get("X-Amz-Target") or "").split(".")[-1]
        with LOCK:
            self.state.calls.append([self.command, path, status])

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = handle_any

    def standin(self, path, body):
        state = self.state
        if path == "/_standin/state":
            with LOCK:
                return self.answer(200, {"containers": sorted(state.containers),
                                         "calls": list(state.calls)})
        if path == "/_standin/gate":
            request = json.loads(body)
            gate = swr_gate if state.args.vendor == "swr" else ecr_gate
            return self.answer(200, gate(state, request))
        return self.answer(404, {"error": "no such stand-in path"})


# --- SWR ------------------------------------------------------------------------------

def swr_error(handler, status, code, message):
    return handler.answer(status, {"error_code": code, "error_msg": message,
                                   "request_id": "0123456789abcdef"})


def apig_refusal(handler, why):
    return swr_error(handler, 401, "APIGW.0301",
                     "Incorrect IAM authentication information: " + why)


def swr_signature_ok(handler, parsed, body):
    """What API Gateway checks: the AK is known, X-Sdk-Date is recent, and the signature
    Huawei's SDK computes over the signed headers equals the one sent. None when right."""
    args = handler.state.args
    authorization = handler.headers.get("Authorization") or ""
    if not authorization.startswith("SDK-HMAC-SHA256 "):
        return "the Authorization header is not SDK-HMAC-SHA256"
    fields = dict(part.strip().split("=", 1)
                  for part in authorization[len("SDK-HMAC-SHA256 "):].split(","))
    if fields.get("Access") != args.ak:
        return "ak %s not found" % fields.get("Access", "")[:4]
    date = handler.headers.get("X-Sdk-Date")
    if not date:
        return "X-Sdk-Date is missing"
    sent = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ")
    if abs((datetime.datetime.utcnow() - sent).total_seconds()) > 15 * 60:
        return "the request time is more than 15 minutes off"
    signed = fields.get("SignedHeaders", "").split(";")
    headers = {}
    for name in signed:
        value = handler.headers.get(name)
        if value is None:
            return "signed header %s is missing" % name
        headers[name] = value
    request = SdkRequest(method=handler.command, schema="http", host=headers.get("host"),
                         resource_path=parsed.path,
                         query_params=urllib.parse.parse_qsl(parsed.query, keep_blank_values=True),
                         header_params=headers, body=body)
    expected = Signer(BasicCredentials(args.ak, args.sk)).sign(request).header_params["Authorization"]
    if expected.split("Signature=")[-1] != fields.get("Signature"):
        return "verify aksk signature fail"
    return None


def swr(handler, parsed, body):
    state, args = handler.state, handler.state.args
    why = swr_signature_ok(handler, parsed, body)
    if why:
        return apig_refusal(handler, why)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    path, method = parsed.path, handler.command
    if method == "GET" and path == "/v2/manage/repos":
        namespace = query.get("namespace")
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
        limit = min(limit, args.page_size)
        with LOCK:
            visible = set(state.containers)
        repos = [r for r in catalog(args.registry)
                 if r.split("/")[0] in visible and (namespace is None or r.split("/")[0] == namespace)]
        page = repos[offset:offset + limit]
        items = [{"name": r.split("/", 1)[1], "namespace": r.split("/")[0], "category": "other",
                  "num_images": 1, "is_public": False} for r in page]
        end = offset + len(page) - 1
        return handler.answer(200, items, [("Content-Range", "%d-%d/%d" % (offset, max(end, offset), len(repos)))])
    if method == "GET" and path.startswith("/v2/manage/namespaces/"):
        name = urllib.parse.unquote(path[len("/v2/manage/namespaces/"):])
        with LOCK:
            exists = name in state.containers
        if not exists:
            return swr_error(handler, 404, "SVCSTG.SWR.4040002", "Namespace not found")
        return handler.answer(200, {"id": 1, "name": name, "creator_name": "user", "auth": 7})
    if method == "POST" and path == "/v2/manage/namespaces":
        try:
            name = json.loads(body)["namespace"]
        except (ValueError, KeyError, TypeError):
            return swr_error(handler, 400, "SVCSTG.SWR.4001000", "Invalid request body")
        if not args.may_create:
            return swr_error(handler, 403, "SVCSTG.SWR.4030001",
                             "Insufficient permissions: swr namespace create")
        with LOCK:
            if name in state.containers:
                return swr_error(handler, 409, "SVCSTG.SWR.4091001", "Namespace already exists")
            state.containers.add(name)
        return handler.answer(201)
    return swr_error(handler, 404, "SVCSTG.SWR.4040000", "no such API")


def swr_gate(state, request):
    """The registry side: Basic '<region>@<AK>' with the login key; no pushes into
    organizations that do not exist. {'status': 0} lets the request through."""
    args = state.args
    login_key = hmac.new(args.sk.encode(), args.ak.encode(), hashlib.sha256).hexdigest()
    import base64
    expected = "Basic " + base64.b64encode(("%s@%s:%s" % (args.region, args.ak, login_key)).encode()).decode()
    if request.get("authorization") != expected:
        return {"status": 401, "headers": [["WWW-Authenticate", 'Basic realm="swr"']],
                "body": {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}}
    rest = request["path"].split("?")[0][len("/v2/"):]
    organization = rest.split("/")[0]
    writes = request["method"] in ("POST", "PUT", "PATCH", "DELETE")
    with LOCK:
        exists = organization in state.containers
    if writes and rest and not exists:
        return {"status": 403, "headers": [],
                "body": {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}}
    return {"status": 0}


# --- ECR ------------------------------------------------------------------------------

def ecr_error(handler, status, kind, message):
    return handler.answer(status, {"__type": kind, "message": message})


def ecr_signature_ok(handler, body):
    """What AWS checks: a known key, the scope's region and service, and the signature
    botocore computes over the signed headers. None when right, else (type, message)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    args = handler.state.args
    authorization = handler.headers.get("Authorization") or ""
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return ("MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = dict(part.strip().split("=", 1)
                  for part in authorization[len("AWS4-HMAC-SHA256 "):].split(","))
    key, date, region, service, _ = fields.get("Credential", "////").split("/", 4)
    if key != args.ak:
        return ("UnrecognizedClientException", "The security token included in the request is invalid.")
    if region != args.region or service != "ecr":
        return ("InvalidSignatureException", "Credential should be scoped to a valid region and service.")
    signed = fields.get("SignedHeaders", "").split(";")
    headers = {name: handler.headers.get(name) or "" for name in signed if name != "host"}
    token = handler.headers.get("X-Amz-Security-Token")
    request = AWSRequest(method=handler.command,
                         url="http://%s%s" % (handler.headers.get("Host"), handler.path),
                         data=body, headers=headers)
    request.context["timestamp"] = handler.headers.get("X-Amz-Date") or ""
    auth = SigV4Auth(Credentials(args.ak, args.sk, token), "ecr", args.region)
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if expected != fields.get("Signature"):
        return ("InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.")
    return None


def ecr(handler, parsed, body):
    state, args = handler.state, handler.state.args
    refused = ecr_signature_ok(handler, body)
    if refused:
        return ecr_error(handler, 403 if refused[0] != "UnrecognizedClientException" else 400, *refused)
    action = (handler.headers.get("X-Amz-Target") or "").split(".")[-1]
    request = json.loads(body or b"{}")
    if action == "DescribeRepositories":
        with LOCK:
            names = sorted(state.containers)
        if request.get("repositoryNames"):
            missing = [n for n in request["repositoryNames"] if n not in names]
            if missing:
                return ecr_error(handler, 400, "RepositoryNotFoundException",
                                 "The repository with name '%s' does not exist in the registry" % missing[0])
            names = request["repositoryNames"]
        start = int(request.get("nextToken") or 0)
        size = min(int(request.get("maxResults") or 100), args.page_size)
        page = names[start:start + size]
        out = {"repositories": [{"repositoryName": n, "registryId": "123456789012"} for n in page]}
        if start + size < len(names):
            out["nextToken"] = str(start + size)
        return handler.answer(200, out)
    if action == "CreateRepository":
        name = request.get("repositoryName", "")
        if not args.may_create:
            return ecr_error(handler, 400, "AccessDeniedException",
                             "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
                             "ecr:CreateRepository on resource: %s" % name)
        with LOCK:
            if name in state.containers:
                return ecr_error(handler, 400, "RepositoryAlreadyExistsException",
                                 "The repository with name '%s' already exists" % name)
            state.containers.add(name)
        return handler.answer(200, {"repository": {"repositoryName": name}})
    if action == "GetAuthorizationToken":
        import base64
        import secrets
        password = "ecr-issued-" + secrets.token_hex(24)
        with LOCK:
            state.issued += 1
            if state.issued > args.stale_tokens:
                state.passwords.add(password)
        token = base64.b64encode(("AWS:%s" % password).encode()).decode()
        return handler.answer(200, {"authorizationData": [{
            "authorizationToken": token,
            "expiresAt": 1.9e9,
            "proxyEndpoint": "https://123456789012.dkr.ecr.%s.amazonaws.com" % args.region}]})
    return ecr_error(handler, 400, "UnknownOperationException", "unknown operation")


def ecr_gate(state, request):
    import base64
    with LOCK:
        valid = {"Basic " + base64.b64encode(("AWS:%s" % p).encode()).decode()
                 for p in state.passwords}
    if request.get("authorization") not in valid:
        return {"status": 401, "headers": [["WWW-Authenticate", 'Basic realm="ecr"']],
                "body": {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}}
    rest = request["path"].split("?")[0][len("/v2/"):]
    for marker in ("/blobs/", "/manifests/", "/tags/"):
        if marker in rest:
            repository = rest.split(marker)[0]
            with LOCK:
                exists = repository in state.containers
            if not exists:
                return {"status": 404, "headers": [], "body": {"errors": [{
                    "code": "NAME_UNKNOWN",
                    "message": "The repository with name '%s' does not exist in the registry "
                               "with id '123456789012'" % repository}]}}
    return {"status": 0}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vendor", choices=["swr", "ecr"], required=True)
    parser.add_argument("--registry", required=True, help="host:port of the real registry")
    parser.add_argument("--region", required=True)
    parser.add_argument("--ak", required=True)
    parser.add_argument("--sk", required=True)
    parser.add_argument("--containers", default="", help="organizations that exist, comma-separated")
    parser.add_argument("--may-create", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--password", default="", help="ECR: a password for user AWS issued before the run")
    parser.add_argument("--stale-tokens", type=int, default=0,
                        help="ECR: how many of the first GetAuthorizationToken passwords have expired")
    args = parser.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
