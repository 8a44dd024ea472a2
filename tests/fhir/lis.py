"""A lab information system, played with public FHIR tooling against LabEdge's cloud API.

fhirpy (a FHIR client this project did not write) sends; every resource the API answers is checked
against the R4 models of fhir.resources. Driven by tests/tests/it/fhir_loop.rs over stdin/stdout,
one JSON object per line:

1. registers a rest-hook Subscription for Specimens, its endpoint an HTTPS server of its own that
   requires the API's client certificate (signed by the cloud CA);
2. posts a transaction Bundle (patient, practitioner and role, prescription, home visit) and prints
   the ids;
3. reads the barcodes the tablet recorded from stdin, waits until the Subscription delivered a
   Specimen for each, then pages through the Specimen search with the cursor and checks that each
   barcode is found exactly once; prints the figures.
"""

import argparse
import json
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fhir.resources import construct_fhir_element
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

LOGIN = "https://labedge.labanalyse.fr/fhir/sid/staff-login"
BARCODE = "https://labedge.labanalyse.fr/fhir/sid/tube-barcode"
INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
CHECKED = {"count": 0}


def valid(resource):
    """Parses a resource with the R4 model of its type: an invalid one raises."""
    construct_fhir_element(resource["resourceType"], resource)
    CHECKED["count"] += 1
    return resource


class Deliveries:
    def __init__(self):
        self.lock = threading.Lock()
        self.seen = []  # (type, id, versionId, barcode)

    def add(self, kind, resource):
        barcode = resource.get("accessionIdentifier", {}).get("value")
        with self.lock:
            self.seen.append((kind, resource["id"], resource["meta"]["versionId"], barcode))


def endpoint(args, deliveries):
    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):
            length = int(self.headers.get("Content-Length", "0"))
            resource = json.loads(self.rfile.read(length))
            kind = self.path.strip("/").split("/")[0]
            valid(resource)
            deliveries.add(kind, resource)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.endpoint_cert, args.endpoint_key)
    context.load_verify_locations(args.ca)
    context.verify_mode = ssl.CERT_REQUIRED  # only the API, by its client certificate
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def bundle(args):
    ids = {k: f"urn:uuid:{uuid.uuid4()}" for k in ("patient", "practitioner", "role", "request", "visit")}
    return ids, {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": ids["patient"], "request": {"method": "POST", "url": "Patient",
                                                    "ifNoneExist": f"identifier={INS_NIR}|{args.ins}"},
             "resource": {
                 "resourceType": "Patient",
                 "identifier": [{"system": INS_NIR, "value": args.ins}],
                 "name": [{"use": "official", "family": "Garnier", "given": ["Odile", "Anne"]}],
                 "gender": "female", "birthDate": "1948-02-03",
                 "extension": [{
                     "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
                     "extension": [{"url": "identityStatus", "valueCoding": {
                         "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status",
                         "code": "RECUP"}}]}]}},
            {"fullUrl": ids["practitioner"], "request": {"method": "POST", "url": "Practitioner"},
             "resource": {"resourceType": "Practitioner", "active": True,
                          "identifier": [{"system": LOGIN, "value": args.login}],
                          "name": [{"family": "Perrin", "given": ["Chloé"]}]}},
            {"fullUrl": ids["role"], "request": {"method": "POST", "url": "PractitionerRole"},
             "resource": {"resourceType": "PractitionerRole", "active": True,
                          "practitioner": {"reference": ids["practitioner"]},
                          "organization": {"reference": f"Organization/{args.lab}"},
                          "code": [{"coding": [{"system": "https://labedge.labanalyse.fr/fhir/CodeSystem/staff-role",
                                                "code": "home_sampler"}]}]}},
            {"fullUrl": ids["request"], "request": {"method": "POST", "url": "ServiceRequest"},
             "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                          "identifier": [{"system": "https://lis.example.fr/orders", "value": str(uuid.uuid4())}],
                          "subject": {"reference": ids["patient"]},
                          "requester": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "10009876543"},
                                        "display": "Dr Hugo Masson"},
                          "performer": [{"reference": f"Organization/{args.lab}"}],
                          "orderDetail": [{"coding": [{"system": "https://labedge.labanalyse.fr/fhir/CodeSystem/exam",
                                                       "code": args.exam}]}],
                          "authoredOn": time.strftime("%Y-%m-%d")}},
            {"fullUrl": ids["visit"], "request": {"method": "POST", "url": "Appointment"},
             "resource": {"resourceType": "Appointment", "status": "booked",
                          "appointmentType": {"coding": [{"system": "https://labedge.labanalyse.fr/fhir/CodeSystem/visit-kind",
                                                          "code": "home"}]},
                          "start": args.start, "minutesDuration": 15,
                          "participant": [{"actor": {"reference": ids["patient"]}, "status": "accepted"},
                                          {"actor": {"reference": f"Location/{args.lab}"}, "status": "accepted"},
                                          {"actor": {"reference": ids["role"]}, "status": "accepted"}],
                          "basedOn": [{"reference": ids["request"]}],
                          "extension": [{"url": "https://labedge.labanalyse.fr/fhir/StructureDefinition/visit-address",
                                         "valueAddress": {"line": ["3 place Bellecour"], "postalCode": "69002",
                                                          "city": "Lyon"}}]}},
        ],
    }


def specimens_by_search(client):
    """Every Specimen, paging with the commit-safe cursor until a page comes back empty."""
    found, cursor = [], 0
    while True:
        page = client.execute("Specimen", method="get", params={"_cursor": cursor, "_count": 100})
        valid(page)
        entries = page.get("entry", [])
        if not entries:
            return found
        found.extend(valid(e["resource"]) for e in entries)
        nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
        cursor = int(urllib.parse.parse_qs(urllib.parse.urlparse(nxt).query)["_cursor"][0])


def say(obj):
    print(json.dumps(obj), flush=True)


def main():
    parser = argparse.ArgumentParser()
    for name in ("base", "cert", "key", "ca", "endpoint-cert", "endpoint-key", "lab", "exam", "login", "start", "ins"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    client = SyncFHIRClient(f"{args.base}/fhir/R4", requests_config={"cert": (args.cert, args.key), "verify": args.ca})
    valid(client.execute("metadata", method="get"))

    deliveries = Deliveries()
    port = endpoint(args, deliveries)
    subscription = client.resource("Subscription", status="requested", criteria="Specimen",
                                   reason="specimens for analysis",
                                   channel={"type": "rest-hook", "endpoint": f"https://localhost:{port}",
                                            "payload": "application/fhir+json"})
    subscription.save()
    valid(subscription.serialize())

    # A refusal is an OperationOutcome fhirpy raises, valid R4 too.
    try:
        client.resource("Patient", identifier=[{"system": INS_NIR, "value": "123"}], gender="female",
                        birthDate="1948-02-03", name=[{"use": "official", "family": "X", "given": ["Y"]}]).save()
        raise SystemExit("a patient with a malformed INS was accepted")
    except OperationOutcome as refusal:
        valid(refusal.resource)

    _, transaction = bundle(args)
    response = valid(client.execute("", method="post", data=transaction))
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert all(s.startswith("201") for s in statuses), statuses
    created = {e["resource"]["resourceType"]: valid(e["resource"]) for e in response["entry"]}
    for kind, resource in created.items():
        read = client.reference(kind, resource["id"]).to_resource()
        valid(read.serialize())
    found = client.resources("Patient").search(identifier=f"{INS_NIR}|{args.ins}").fetch()
    assert len(found) == 1, f"{len(found)} patients with the INS"
    say({"patient": created["Patient"]["id"], "prescription": created["ServiceRequest"]["id"],
         "appointment": created["Appointment"]["id"], "role": created["PractitionerRole"]["id"],
         "subscription": subscription["id"]})

    barcodes = set(json.loads(sys.stdin.readline())["barcodes"])
    started = time.monotonic()
    while True:
        with deliveries.lock:
            delivered = {b for (k, _, _, b) in deliveries.seen if k == "Specimen"}
        if barcodes <= delivered:
            break
        if time.monotonic() - started > 120:
            raise SystemExit(f"the Subscription delivered {sorted(delivered)}, not all of {sorted(barcodes)}")
        time.sleep(0.2)
    waited = time.monotonic() - started
    searched = [s["accessionIdentifier"]["value"] for s in specimens_by_search(client)]
    for barcode in barcodes:
        assert searched.count(barcode) == 1, f"{barcode} found {searched.count(barcode)} times by the search"
    distinct = {(k, i, v) for (k, i, v, _) in deliveries.seen}
    say({"ok": True, "specimens": len(searched), "deliveries": len(deliveries.seen),
         "distinct_deliveries": len(distinct), "delivered_within_s": round(waited, 1),
         "resources_validated": CHECKED["count"]})


if __name__ == "__main__":
    main()
