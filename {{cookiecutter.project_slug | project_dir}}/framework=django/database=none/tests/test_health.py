from django.test import Client, override_settings


def test_health_answers(client: Client) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_checks_nothing_but_the_process(client: Client) -> None:
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {}}


@override_settings(ALLOWED_HOSTS=["orders.example.com"])
def test_probes_answer_whatever_the_host_header(client: Client) -> None:
    # Kubelet sends the pod's IP as the Host; everything else keeps ALLOWED_HOSTS.
    probe = client.get("/ready", HTTP_HOST="10.1.2.3:8000")
    api = client.get("/api/v1/items", HTTP_HOST="10.1.2.3:8000")

    assert probe.status_code == 200
    assert api.status_code == 400
    assert api.json() == {"detail": "Bad request"}
