// Segment one tomogram with the trained model, cluster (MeanShift) and write the picks.
process PICK {
    tag "${tomo}"
    label 'process_medium'
    label 'process_gpu'
    container "${params.container_prefix}-pick-eval:${params.container_tag}"

    input:
    tuple val(tomo), path(tomogram)
    path model

    output:
    tuple val(tomo), path("${tomo}/candidates.csv"), emit: picks
    path "${tomo}/*",    emit: files
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    templearn-pick-eval pick ${tomogram} --weights ${model} --out ${tomo} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p ${tomo} && touch ${tomo}/candidates.csv
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
