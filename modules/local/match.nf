// The baseline: template matching of one tomogram with the target's template.
process MATCH {
    tag "${tomo}"
    label 'process_high'
    container "${params.container_prefix}-pick-eval:${params.container_tag}"

    input:
    tuple val(tomo), path(tomogram), path(mask, stageAs: 'mask/*'), val(contrast)   // mask: [] for none; contrast dark|bright
    val template                    // PDB ID, or the name of the staged file below
    path structures

    output:
    tuple val(tomo), path("${tomo}/candidates.csv"), emit: picks
    path "${tomo}/*",    emit: files
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    templearn-pick-eval match ${tomogram} --template ${template} --out ${tomo} ${mask ? "--mask ${mask}" : ''} ${contrast == 'bright' ? '--contrast bright' : ''} ${args}

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
