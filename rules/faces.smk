rule faces:
    input:
        f"{RESULTS}/data/{{dataset}}/records.csv",
    output:
        f"{RESULTS}/faces/{{dataset}}/manifest.csv",
    log:
        f"{LOGS}/faces/{{dataset}}.log",
    benchmark:
        f"{LOGS}/faces/{{dataset}}.benchmark.tsv"
    conda:
        ENV
    threads: config["faces"].get("workers", 1)
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        backend=config["faces"]["backend"],
        size=config["faces"]["size"],
        device=config.get("device", "auto"),
    script:
        "../workflow_scripts/faces.py"
