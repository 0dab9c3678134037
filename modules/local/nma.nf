// Flexible variants of one target's templates by normal mode analysis (ANM, 20 modes).
process NMA {
    tag "${target}"
    label 'process_medium'
    container "${params.container_prefix}-nma:${params.container_tag}"

    input:
    tuple val(target), val(specs)   // specs: PDB IDs, or names of the staged files below
    path structures                 // structure files named in specs ([] when all are PDB IDs)

    output:
    tuple val(target), path("${target}"), emit: variants   // ${target}/variants.csv + variant files
    path "versions.yml",                  emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    templearn-nma variants ${specs.join(' ')} --out ${target} --seed ${params.seed} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p ${target} && echo 'template,variant,file,rmsd' > ${target}/variants.csv
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
